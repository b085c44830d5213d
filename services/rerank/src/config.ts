import { env } from "@recsys/shared";
import { itemFeedConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the rerank service (besides the common ones). */
export const rerankConfigSpec = {
  /** The items topic (new items' genres and titles from the catalog service). */
  ...itemFeedConfigSpec,
  /** gRPC listen address. */
  RECSYS_RERANK_ADDR: env.str("127.0.0.1:50055"),
  /** Task weights for score fusion, "task=weight,...". */
  RECSYS_RERANK_WEIGHTS: env.numberMap("click=1,like=0.5"),
  /** MMR trade-off: 1 = relevance only, 0 = diversity only. */
  RECSYS_RERANK_MMR_LAMBDA: env.num(0.7, 0, 1),
  /** How many top candidates MMR considers. */
  RECSYS_RERANK_MMR_POOL: env.int(100, 1, 10_000),
  /** Max share of the list one primary genre may take. */
  RECSYS_RERANK_GENRE_CAP: env.num(0.4, 0.01, 1),
  /** Largest `count` a request may ask for; more is INVALID_ARGUMENT. */
  RECSYS_RERANK_MAX_COUNT: env.int(200, 1, 10_000),
  /** Positions of each list kept for new items recalled by the `fresh` channel (0: none). */
  RECSYS_RERANK_FRESH_SLOTS: env.int(2, 0, 100),
};
