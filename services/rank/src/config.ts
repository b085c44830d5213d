import { env } from "@recsys/shared";
import { itemFeedConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the rank service (besides the common ones). */
export const rankConfigSpec = {
  /** The items topic (new items' genres and titles from the catalog service). */
  ...itemFeedConfigSpec,
  RECSYS_RANK_ADDR: env.str("127.0.0.1:50054"),
  RECSYS_RANK_MAX_CANDIDATES: env.int(2_000, 1, 100_000),
};
