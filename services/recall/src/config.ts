import { env } from "@recsys/shared";

/** Environment variables read by the recall service (besides the common ones). */
export const recallConfigSpec = {
  RECSYS_RECALL_ADDR: env.str("127.0.0.1:50052"),
  /** Overall cap on candidates returned. */
  RECSYS_RECALL_MAX_CANDIDATES: env.int(1500, 1, 20_000),
  /** Default quota per channel, "channel=quota,...". */
  RECSYS_RECALL_QUOTAS: env.numberMap("kuaiformer=1000,swing=300,popular=200"),
  /** Sequence recall models to serve as channels (model store names), e.g. "kuaiformer,sasrec". */
  RECSYS_SEQUENCE_MODELS: env.str("kuaiformer"),
  /** ONNX worker threads for the sequence encoders. */
  RECSYS_ONNX_THREADS: env.int(1, 1, 64),
  /** How often the model store's CURRENT pointers are checked, ms. */
  RECSYS_MODEL_POLL_MS: env.int(2_000, 100, 600_000),
  /** HNSW search breadth (higher: better recall, slower). */
  RECSYS_HNSW_EF: env.int(200, 10, 10_000),
  /** Time limit for one channel, ms (also bounded by the request deadline). */
  RECSYS_RECALL_CHANNEL_TIMEOUT_MS: env.int(22, 1, 10_000),
  /** Half-life of the popular channel's time decay, days. */
  RECSYS_POPULAR_HALF_LIFE_DAYS: env.num(60, 0.01),
  /** Recent history items used as swing seeds. */
  RECSYS_SWING_SEEDS: env.int(30, 1, 1000),
};
