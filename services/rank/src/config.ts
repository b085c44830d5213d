import { env } from "@recsys/shared";
import { itemFeedConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the rank service (besides the common ones). */
export const rankConfigSpec = {
  /** The items topic (new items' genres, titles and content vectors from the catalog service). */
  ...itemFeedConfigSpec,
  /** gRPC listen address. */
  RECSYS_RANK_ADDR: env.str("127.0.0.1:50054"),
  /** Most candidates a request may send; more is INVALID_ARGUMENT. */
  RECSYS_RANK_MAX_CANDIDATES: env.int(2_000, 1, 100_000),
  /** ONNX Runtime execution provider of the em3 model: cuda falls back to cpu (logged, metric) when unavailable. */
  RECSYS_RANK_EXECUTION_PROVIDER: env.oneOf(["cpu", "cuda"], "cpu"),
  /** ONNX worker threads of the em3 model (1, with 1 intra-op thread, suits a 2-core pod best). */
  RECSYS_RANK_ONNX_THREADS: env.int(1, 1, 64),
  /** Intra-op threads per ONNX session of the em3 model. */
  RECSYS_RANK_ONNX_INTRA_OP_THREADS: env.int(1, 1, 64),
  /** Requests waiting for an ONNX worker beyond this fall back to the interim scorer (rank_model_error). */
  RECSYS_RANK_ONNX_MAX_QUEUE: env.int(64, 1, 10_000),
  /** The model's answer must come this long before the request deadline, or the interim scorer answers, ms. */
  RECSYS_RANK_DEADLINE_MARGIN_MS: env.int(5, 0, 10_000),
  /** How often the model store's CURRENT pointer of em3 is checked, ms. */
  RECSYS_MODEL_POLL_MS: env.int(2_000, 100, 600_000),
};
