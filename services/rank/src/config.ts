import { env } from "@recsys/shared";

/** Environment variables read by the rank service (besides the common ones). */
export const rankConfigSpec = {
  RECSYS_RANK_ADDR: env.str("127.0.0.1:50054"),
  RECSYS_RANK_MAX_CANDIDATES: env.int(2_000, 1, 100_000),
};
