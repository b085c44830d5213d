import { DEFAULT_ENCODER_DIR, env } from "@recsys/shared";
import { itemFeedConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the recall service (besides the common ones). */
export const recallConfigSpec = {
  /** The items topic (catalog ItemUpdates grow the content index). */
  ...itemFeedConfigSpec,
  /** gRPC listen address. */
  RECSYS_RECALL_ADDR: env.str("127.0.0.1:50052"),
  /** Overall cap on candidates returned. */
  RECSYS_RECALL_MAX_CANDIDATES: env.int(2000, 1, 20_000),
  /** Default quota per channel, "channel=quota,...". */
  RECSYS_RECALL_QUOTAS: env.numberMap(
    "kuaiformer=500,generative=100,swing=300,fresh=100,query=300,popular=200",
  ),
  /** Sequence recall models to serve as channels (model store names), e.g. "kuaiformer,sasrec". */
  RECSYS_SEQUENCE_MODELS: env.str("kuaiformer"),
  /** The generative retrieval model (model store name; "" = no generative channel). */
  RECSYS_GENERATIVE_MODEL: env.str("generative"),
  /** generative: at most this many beams (the channel's quota is capped by it). */
  RECSYS_GENERATIVE_MAX_BEAM: env.int(300, 1, 5_000),
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
  /** The pretrained text encoder for the query channel (scripts/fetch-encoder.sh). */
  RECSYS_ENCODER_DIR: env.str(DEFAULT_ENCODER_DIR),
  /** Content index HNSW: links per node. */
  RECSYS_CONTENT_HNSW_M: env.int(16, 4, 128),
  /** Content index HNSW: construction breadth (higher: better graph, slower build). */
  RECSYS_CONTENT_HNSW_EF_CONSTRUCTION: env.int(100, 10, 2_000),
  /** Content index HNSW: search breadth (higher: better recall, slower). */
  RECSYS_CONTENT_HNSW_EF: env.int(200, 10, 10_000),
  /** Where the content graph built for a `content` version is kept for the next start ("" = nowhere). */
  RECSYS_CONTENT_GRAPH_CACHE_DIR: env.str("var/cache/recall"),
  /** fresh: an item is new for this many days (catalog items: since created_at; dataset items: see docs). */
  RECSYS_FRESH_MAX_AGE_DAYS: env.num(30, 0.001, 36_500),
  /** fresh and query: recent positive items whose content vectors make the user's profile. */
  RECSYS_CONTENT_PROFILE_SEEDS: env.int(20, 1, 1_000),
  /** query: weight of the user's profile in (1 − w)·cos(query, item) + w·cos(profile, item). */
  RECSYS_QUERY_PERSONALISATION_WEIGHT: env.num(0.3, 0, 1),
  /** query: an item matches when cos(query, item) ≥ max(MIN, RELATIVE × the best match's cos). */
  RECSYS_QUERY_MIN_SIMILARITY: env.num(0.3, -1, 1),
  /** query: RELATIVE in the rule above, the share of the best match's cosine an item must reach. */
  RECSYS_QUERY_RELATIVE_SIMILARITY: env.num(0.8, 0, 1),
};
