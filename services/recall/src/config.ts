import { env } from "@recsys/shared";

/** Environment variables read by the recall service (besides the common ones). */
export const recallConfigSpec = {
  RECSYS_RECALL_ADDR: env.str("127.0.0.1:50052"),
  /** Overall cap on candidates returned. */
  RECSYS_RECALL_MAX_CANDIDATES: env.int(1500, 1, 20_000),
  /** Default quota per channel, "channel=quota,...". */
  RECSYS_RECALL_QUOTAS: env.numberMap("swing=800,popular=300"),
  /** Time limit for one channel, ms (also bounded by the request deadline). */
  RECSYS_RECALL_CHANNEL_TIMEOUT_MS: env.int(20, 1, 10_000),
  /** Half-life of the popular channel's time decay, days. */
  RECSYS_POPULAR_HALF_LIFE_DAYS: env.num(60, 0.01),
  /** Recent history items used as swing seeds. */
  RECSYS_SWING_SEEDS: env.int(30, 1, 1000),
};
