import { env } from "@recsys/shared";
import { itemFeedConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the prerank service (besides the common ones). */
export const prerankConfigSpec = {
  /** The items topic (new items' genres, titles and content vectors from the catalog service). */
  ...itemFeedConfigSpec,
  /** gRPC listen address. */
  RECSYS_PRERANK_ADDR: env.str("127.0.0.1:50053"),
  /** Candidates kept when the request does not say. */
  RECSYS_PRERANK_KEEP: env.int(300, 1, 5_000),
  /** Most candidates a request may send, and the largest `keep`; more is INVALID_ARGUMENT. */
  RECSYS_PRERANK_MAX_CANDIDATES: env.int(5_000, 1, 100_000),
  /** Places in the kept set guaranteed to each channel's best candidates, "channel=count,..." (reserve.ts). */
  RECSYS_PRERANK_RESERVED: env.numberMap("fresh=20,query=100"),
  /** ONNX worker threads of the prerank model (1, with 1 intra-op thread, suits 2 cores). */
  RECSYS_PRERANK_ONNX_THREADS: env.int(1, 1, 64),
  /** Intra-op threads per ONNX session of the prerank model. */
  RECSYS_PRERANK_ONNX_INTRA_OP_THREADS: env.int(1, 1, 64),
  /** Requests waiting for an ONNX worker beyond this fall back to the interim scorer (prerank_model_error). */
  RECSYS_PRERANK_ONNX_MAX_QUEUE: env.int(64, 1, 10_000),
  /** The model's answer must come this long before the request deadline, or the interim scorer answers, ms. */
  RECSYS_PRERANK_DEADLINE_MARGIN_MS: env.int(3, 0, 10_000),
  /** How often the model store's CURRENT pointer of prerank is checked, ms. */
  RECSYS_MODEL_POLL_MS: env.int(2_000, 100, 600_000),
};
