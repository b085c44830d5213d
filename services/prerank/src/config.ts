import { env } from "@recsys/shared";

/** Environment variables read by the prerank service (besides the common ones). */
export const prerankConfigSpec = {
  RECSYS_PRERANK_ADDR: env.str("127.0.0.1:50053"),
  /** Candidates kept when the request does not say. */
  RECSYS_PRERANK_KEEP: env.int(300, 1, 5_000),
  RECSYS_PRERANK_MAX_CANDIDATES: env.int(5_000, 1, 100_000),
};
