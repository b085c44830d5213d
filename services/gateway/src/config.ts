import { env } from "@recsys/shared";
import { busConfigSpec } from "@recsys/shared/bus";
import { streamProcessingSpec, userStateSpec } from "@recsys/stream";

/** Environment variables read by the gateway (besides the common ones). */
export const gatewayConfigSpec = {
  ...busConfigSpec,
  ...streamProcessingSpec,
  ...userStateSpec,
  /** gRPC listen address of the public API (RecommendService, FeedbackService). */
  RECSYS_GATEWAY_ADDR: env.str("127.0.0.1:50051"),
  /** gRPC address of the recall service. */
  RECSYS_RECALL_TARGET: env.str("127.0.0.1:50052"),
  /** gRPC address of the prerank service. */
  RECSYS_PRERANK_TARGET: env.str("127.0.0.1:50053"),
  /** gRPC address of the rank service. */
  RECSYS_RANK_TARGET: env.str("127.0.0.1:50054"),
  /** gRPC address of the rerank service. */
  RECSYS_RERANK_TARGET: env.str("127.0.0.1:50055"),
  /** Public requests are small: anything bigger is rejected with RESOURCE_EXHAUSTED. */
  RECSYS_MAX_REQUEST_BYTES: env.int(64 * 1024, 1024),
  /** Requests in flight before new ones are shed with RESOURCE_EXHAUSTED (the hard cap over every method). */
  RECSYS_MAX_CONCURRENT_CALLS: env.int(128, 1, 100_000),
  /**
   * Adaptive admission (shared/src/grpc/admission.ts): Recommend and Report each get a concurrency
   * limit that follows their latency; calls beyond it are refused at once with RESOURCE_EXHAUSTED.
   */
  RECSYS_ADMISSION: env.bool(true),
  /** Latency Recommend's admission keeps, ms: slower answers (or stage timeouts) lower its limit. */
  RECSYS_ADMISSION_RECOMMEND_TARGET_MS: env.int(50, 1, 60_000),
  /** The same for Report (a Kafka acknowledgement may take a while). */
  RECSYS_ADMISSION_REPORT_TARGET_MS: env.int(500, 1, 60_000),
  /** A stage that fails this many calls in a row is skipped (its fallback taken at once) for a cooldown. */
  RECSYS_BREAKER_FAILURES: env.int(5, 1, 10_000),
  /** How long a stage's open circuit breaker skips it before one probe call goes out, ms. */
  RECSYS_BREAKER_COOLDOWN_MS: env.int(2_000, 10, 600_000),
  /** Largest `count` a Recommend request may ask for; more is INVALID_ARGUMENT. */
  RECSYS_MAX_COUNT: env.int(100, 1, 1_000),
  /** Behaviour sequence length passed to the stages. */
  RECSYS_HISTORY_LENGTH: env.int(256, 1, 10_000),
  /**
   * Users the in-process user state keeps (embedded mode, no Redis): past it the least recently
   * used user is dropped, so memory stays bounded however many user ids arrive.
   */
  RECSYS_USER_STATE_MAX_USERS: env.int(1_000_000, 1, 1_000_000_000),
  /** Optional JSON file overriding the funnel definition and experiment variants. */
  RECSYS_FUNNEL_CONFIG: env.str(""),
  /** Half-life of the time decay of the popular items the gateway falls back to, days. */
  RECSYS_POPULAR_HALF_LIFE_DAYS: env.num(60, 0.01),
  /** Requests sent through the funnel at start-up to open channels and warm the JIT. */
  RECSYS_WARMUP_REQUESTS: env.int(40, 0, 10_000),
  /** Per-command timeout of user-state reads from Redis: past it, Recommend degrades instead of waiting. */
  RECSYS_REDIS_TIMEOUT_MS: env.int(50, 5, 10_000),
  /** Log every Recommend response to the impressions topic. */
  RECSYS_IMPRESSION_LOG: env.bool(true),
  /** Impressions held in memory while the bus is slow; beyond, new ones are dropped and counted. */
  RECSYS_IMPRESSION_BUFFER: env.int(10_000, 1, 10_000_000),
  /**
   * Run the stream processor inside the gateway. auto: the whole processor
   * with the embedded bus; with Kafka, only the user-state updater and only
   * when the user state is in this process's memory (no RECSYS_REDIS_URL).
   */
  RECSYS_STREAM_IN_PROCESS: env.oneOf(["auto", "off"], "auto"),
  /** With an in-process user-state updater, Report waits up to this long for its events to be applied. */
  RECSYS_FEEDBACK_APPLY_WAIT_MS: env.int(250, 0, 10_000),
};
