import { env } from "@recsys/shared";
import { busConfigSpec } from "@recsys/shared/bus";

/** Settings of the stream processor, wherever it runs (stream service or in-process in the gateway). */
export const streamProcessingSpec = {
  /** Feedback later than this after an impression does not label it; unengaged items are negatives. */
  RECSYS_ATTRIBUTION_WINDOW_MS: env.int(30 * 60 * 1000, 100, 7 * 24 * 3600 * 1000),
  /** Ratings at or above this count as "like" in samples. */
  RECSYS_LIKE_RATING_THRESHOLD: env.num(4, 0),
  /** Half-life of the trending scores' time decay. */
  RECSYS_TRENDING_HALF_LIFE_MS: env.int(6 * 3600 * 1000, 1_000),
  /** Items kept in the trending scores. */
  RECSYS_TRENDING_TOP: env.int(1_000, 10, 1_000_000),
  /** Embedded mode: trending snapshot file (Redis mode writes the <prefix>trending ZSET instead). */
  RECSYS_TRENDING_FILE: env.str("var/stream/trending.json"),
};

/** User-state store settings shared by the gateway (reads) and the stream (writes). */
export const userStateSpec = {
  /** redis://host:port. Empty: the user state lives in the gateway's memory. */
  RECSYS_REDIS_URL: env.str(""),
  /** Key prefix in Redis. */
  RECSYS_REDIS_PREFIX: env.str("recsys:"),
  /** Behaviour sequence length kept per user. */
  RECSYS_HISTORY_LENGTH: env.int(256, 1, 10_000),
};

/** Environment variables read by the stream service (besides the common ones). */
export const streamConfigSpec = {
  ...busConfigSpec,
  ...streamProcessingSpec,
  ...userStateSpec,
  /** gRPC address: health (SERVING once the consumers are running) and reflection only. */
  RECSYS_STREAM_ADDR: env.str("127.0.0.1:50056"),
  /** Per-command timeout of the stream's Redis writes. */
  RECSYS_REDIS_TIMEOUT_MS: env.int(2_000, 10, 60_000),
};
