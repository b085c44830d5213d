import { env } from "@recsys/shared";
import { itemFeedConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the prerank service (besides the common ones). */
export const prerankConfigSpec = {
  /** The items topic (new items' genres and titles from the catalog service). */
  ...itemFeedConfigSpec,
  RECSYS_PRERANK_ADDR: env.str("127.0.0.1:50053"),
  /** Candidates kept when the request does not say. */
  RECSYS_PRERANK_KEEP: env.int(300, 1, 5_000),
  RECSYS_PRERANK_MAX_CANDIDATES: env.int(5_000, 1, 100_000),
  /** Places in the kept set guaranteed to each channel's best candidates, "channel=count,..." (reserve.ts). */
  RECSYS_PRERANK_RESERVED: env.numberMap("fresh=20,query=100"),
};
