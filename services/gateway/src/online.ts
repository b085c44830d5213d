/**
 * The gateway's online plumbing, chosen by configuration:
 *
 * | RECSYS_KAFKA_BROKERS | RECSYS_REDIS_URL | user state read from | updated by                            |
 * |----------------------|------------------|----------------------|---------------------------------------|
 * | unset (embedded bus) | unset            | gateway memory       | stream processor inside the gateway   |
 * | unset (embedded bus) | set              | Redis                | stream processor inside the gateway   |
 * | set                  | unset            | gateway memory       | user-state updater inside the gateway |
 * | set                  | set              | Redis                | the stream service                    |
 *
 * Feedback and impressions go to the bus: with Kafka through a spilling
 * publisher (local disk while Kafka is unavailable), with the embedded bus
 * straight to its fsync'd log.
 */
import { hostname } from "node:os";
import {
  type ConfigOf,
  type commonConfigSpec,
  InMemoryUserStateStore,
  type Interaction,
  type Runtime,
  type UserStateStore,
} from "@recsys/shared";
import {
  BusMetrics,
  type BusRecord,
  type EventBus,
  KafkaBus,
  type LogDamage,
  openBus,
  SpillingPublisher,
  spillDir,
  type TopicNames,
  withTimeout,
} from "@recsys/shared/bus";
import { RedisUserStateStore, StaleOnErrorUserStateStore } from "@recsys/shared/userstate-redis";
import { datasetTag, FileTrendingSink, RedisTrendingSink, StreamProcessor } from "@recsys/stream";
import type { gatewayConfigSpec } from "./config.js";
import type { FeedbackSink } from "./feedback.js";
import { ImpressionLogSideEffect } from "./impressions.js";

type GatewayRuntime = Runtime<ConfigOf<typeof commonConfigSpec> & ConfigOf<typeof gatewayConfigSpec>>;

export interface Online {
  readonly store: UserStateStore;
  readonly feedback: FeedbackSink;
  readonly impressions: ImpressionLogSideEffect | undefined;
  readonly describe: Record<string, string>;
  close(): Promise<void>;
}

export async function openOnline(rt: GatewayRuntime, interactions: readonly Interaction[]): Promise<Online> {
  const cfg = rt.config;
  const { logger, metrics } = rt;
  const busMetrics = BusMetrics.of(metrics);
  // A damaged region of a local log (quarantined on open, nothing dropped) needs an operator.
  const onDamage = (d: LogDamage) => rt.fault(`damaged log region in ${d.segment} at offset ${d.offset}`);
  const { bus, topics } = await openBus("gateway", cfg, logger, metrics, onDamage);
  // Closed in reverse order: the processor and the spill before the bus they use.
  const closers: Array<() => Promise<void>> = [() => bus.close()];

  // Publishing: Kafka through the spill; the embedded bus is already a disk log.
  let publish: (topic: string, records: readonly BusRecord[], sync: boolean) => Promise<unknown>;
  if (bus.kind === "kafka") {
    const spill = await SpillingPublisher.open({
      primary: bus,
      dir: spillDir(cfg, "gateway"),
      logger,
      metrics: busMetrics,
      sendTimeoutMs: cfg.RECSYS_BUS_SEND_TIMEOUT_MS,
      onDamage,
    });
    publish = (topic, records, sync) => spill.publish(topic, records, { sync });
    if (bus instanceof KafkaBus) {
      await withTimeout(bus.connect(), 5_000, "kafka producer connect timed out").catch((err: unknown) =>
        logger.warn({ err }, "kafka producer not connected yet; feedback spills to disk meanwhile"),
      );
    }
    closers.push(() => spill.close());
  } else {
    publish = (topic, records, sync) => bus.publish(topic, records, { sync });
  }

  // User state.
  let store: UserStateStore;
  let redis: RedisUserStateStore | undefined;
  if (cfg.RECSYS_REDIS_URL) {
    redis = await RedisUserStateStore.connect({
      url: cfg.RECSYS_REDIS_URL,
      prefix: cfg.RECSYS_REDIS_PREFIX,
      logger,
      maxSequenceLength: cfg.RECSYS_HISTORY_LENGTH,
      timeoutMs: cfg.RECSYS_REDIS_TIMEOUT_MS,
    });
    store = new StaleOnErrorUserStateStore(redis);
    closers.push(() => redis!.close());
  } else {
    const memory = InMemoryUserStateStore.fromInteractions(
      interactions,
      cfg.RECSYS_HISTORY_LENGTH,
      cfg.RECSYS_USER_STATE_MAX_USERS,
    );
    metrics.observedGauge(
      "recsys_user_state_users",
      "Users held by the in-process user state (at most RECSYS_USER_STATE_MAX_USERS)",
      () => memory.users,
    );
    metrics.observedGauge(
      "recsys_user_state_evicted_users",
      "Least recently used users dropped from the in-process user state so far, to stay within its cap",
      () => memory.evictions,
    );
    store = memory;
  }

  // The stream processor in this process, when nobody else can do its work.
  const processor = await startInProcessStream(rt, bus, topics, store, redis, interactions, closers);

  const impressions = cfg.RECSYS_IMPRESSION_LOG
    ? new ImpressionLogSideEffect({
        publish: (records) => publish(topics.of("impressions"), records, false),
        topic: topics.of("impressions"),
        capacity: cfg.RECSYS_IMPRESSION_BUFFER,
        logger,
        metrics: busMetrics,
      })
    : undefined;

  const feedbackTopic = topics.of("feedback");
  const feedback: FeedbackSink = {
    publish: (records) => publish(feedbackTopic, records, true),
    applied:
      processor && cfg.RECSYS_FEEDBACK_APPLY_WAIT_MS > 0
        ? (ids) => processor.waitApplied(ids, cfg.RECSYS_FEEDBACK_APPLY_WAIT_MS)
        : undefined,
  };

  return {
    store,
    feedback,
    impressions,
    describe: {
      bus: bus.kind,
      userState: redis ? "redis" : "memory",
      streamInProcess: processor ? (bus.kind === "embedded" ? "full" : "user-state") : "off",
    },
    async close() {
      await impressions?.close();
      for (const close of closers.reverse()) {
        try {
          await close();
        } catch (err) {
          logger.warn({ err }, "closing the online plumbing");
        }
      }
    },
  };
}

async function startInProcessStream(
  rt: GatewayRuntime,
  bus: EventBus,
  topics: TopicNames,
  store: UserStateStore,
  redis: RedisUserStateStore | undefined,
  interactions: readonly Interaction[],
  closers: Array<() => Promise<void>>,
): Promise<StreamProcessor | undefined> {
  const cfg = rt.config;
  if (cfg.RECSYS_STREAM_IN_PROCESS === "off") return undefined;
  const embedded = bus.kind === "embedded";
  if (!embedded && redis) return undefined; // the stream service owns Redis
  let writer: UserStateStore = store;
  if (redis) {
    // Writes and the one-time import use their own connection with a write-sized timeout.
    const w = await RedisUserStateStore.connect({
      url: cfg.RECSYS_REDIS_URL,
      prefix: cfg.RECSYS_REDIS_PREFIX,
      logger: rt.logger,
      maxSequenceLength: cfg.RECSYS_HISTORY_LENGTH,
      timeoutMs: 2_000,
    });
    try {
      await w.seedOnce(datasetTag(cfg.RECSYS_DATA_DIR, interactions), interactions);
    } catch (err) {
      rt.logger.warn({ err }, "user-state import into Redis failed; histories start empty");
    }
    writer = w;
    closers.push(() => w.close());
  }
  const processor = new StreamProcessor({
    deadLetterDir: cfg.RECSYS_BUS_DIR,
    bus,
    topics,
    store: writer,
    logger: rt.logger,
    metrics: rt.metrics,
    groupPrefix: cfg.RECSYS_BUS_TOPIC_PREFIX,
    userState: {
      // A store in this process's memory is rebuilt at each start: replay the
      // retained feedback every time, under a group id of this process only.
      commit: redis !== undefined,
      groupId:
        redis || embedded ? undefined : `${cfg.RECSYS_BUS_TOPIC_PREFIX}gateway-${hostname()}-${process.pid}`,
    },
    samples: embedded
      ? {
          attributionWindowMs: cfg.RECSYS_ATTRIBUTION_WINDOW_MS,
          likeRatingThreshold: cfg.RECSYS_LIKE_RATING_THRESHOLD,
        }
      : undefined,
    trending: !embedded
      ? undefined
      : redis
        ? new RedisTrendingSink(
            (writer as RedisUserStateStore).client,
            cfg.RECSYS_REDIS_PREFIX,
            cfg.RECSYS_TRENDING_HALF_LIFE_MS,
            cfg.RECSYS_TRENDING_TOP,
            rt.logger,
          )
        : new FileTrendingSink(
            cfg.RECSYS_TRENDING_FILE,
            cfg.RECSYS_TRENDING_HALF_LIFE_MS,
            cfg.RECSYS_TRENDING_TOP,
          ),
  });
  const t0 = performance.now();
  await processor.start();
  const caughtUp = await processor.waitCaughtUp(120_000);
  rt.logger.info(
    { caughtUp, ms: Math.round(performance.now() - t0), bus: bus.kind },
    "in-process stream processor started (feedback log replayed)",
  );
  closers.push(() => processor.stop());
  return processor;
}
