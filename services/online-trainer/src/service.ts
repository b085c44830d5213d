/**
 * Wires the online trainer: the dataset's histories, the feedback and
 * samples feeds (embedded tail or Kafka), the Python update runner and the
 * update timer. main.ts runs it under createRuntime; tests call it directly.
 *
 * Kafka consumer groups:
 * - `<prefix>online-trainer-samples`: commit "manual", committed after an
 *   update consumed the samples (the state file skips what a crash between
 *   the two re-delivers);
 * - `<prefix>online-trainer-feedback-<host>-<pid>`: the histories live in
 *   memory, so each start replays the retained feedback and never commits.
 */
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  type ConfigOf,
  type commonConfigSpec,
  type Logger,
  loadInteractions,
  type Metrics,
} from "@recsys/shared";
import {
  type EventBus,
  encodeRecord,
  kafkaBrokers,
  openBus,
  TOPICS,
  TopicNames,
  topicDir,
} from "@recsys/shared/bus";
import { ModelVersionPublishedSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import { type onlineTrainerConfigSpec, parseModels, pythonCommand } from "./config.js";
import { UserHistories } from "./history.js";
import { OnlineMetrics } from "./metrics.js";
import {
  embeddedLogEnd,
  type Feed,
  type FeedRecord,
  followEmbeddedLog,
  followKafkaTopic,
} from "./sources.js";
import { OnlineTrainer } from "./trainer.js";
import { runOnlineUpdate, type UpdateResult } from "./update.js";

export type OnlineTrainerConfig = ConfigOf<typeof commonConfigSpec> &
  ConfigOf<typeof onlineTrainerConfigSpec>;

export interface OnlineServiceOptions {
  readonly cfg: OnlineTrainerConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** How often the trigger policy is checked. Default 1 s. */
  readonly tickMs?: number;
  /** Replaces the Python runner (tests). */
  readonly update?: (model: string, shard: string, signal: AbortSignal) => Promise<UpdateResult>;
}

export interface OnlineService {
  readonly trainer: OnlineTrainer;
  readonly histories: UserHistories;
  readonly samples: Feed;
  readonly feedback: Feed;
  readonly describe: Record<string, unknown>;
  stop(): Promise<void>;
}

export async function startOnlineService(o: OnlineServiceOptions): Promise<OnlineService> {
  const { cfg, logger, metrics } = o;
  const m = OnlineMetrics.of(metrics);
  const models = parseModels(cfg.RECSYS_ONLINE_MODELS);
  const dir = resolve(cfg.RECSYS_ONLINE_DIR);
  const python = pythonCommand(cfg);

  const t0 = performance.now();
  const histories = new UserHistories();
  histories.addBase(await loadInteractions(cfg.RECSYS_DATA_DIR));
  logger.info(
    { users: histories.userCount, events: histories.size, ms: Math.round(performance.now() - t0) },
    "base histories loaded from the dataset",
  );

  const topics = new TopicNames(cfg.RECSYS_BUS_TOPIC_PREFIX);
  const kafka = kafkaBrokers(cfg).length > 0;
  let bus: EventBus | undefined;
  if (kafka) bus = (await openBus("online-trainer", cfg, logger, metrics)).bus;

  const update =
    o.update ??
    ((model: string, shard: string, signal: AbortSignal) =>
      runOnlineUpdate(
        {
          ...python,
          store: cfg.RECSYS_MODEL_STORE,
          data: cfg.RECSYS_DATA_DIR,
          tolerance: cfg.RECSYS_ONLINE_TOLERANCE,
          timeoutMs: cfg.RECSYS_ONLINE_TIMEOUT_MS,
          signal,
          onStderrLine: (line) => logger.debug({ model, line }, "trainer"),
        },
        model,
        shard,
      ));

  let feedback: Feed | undefined;
  let samples: Feed | undefined;
  const feedbackCaughtUp = async (sinceMs: number): Promise<boolean> => {
    const deadline = Date.now() + 2 * cfg.RECSYS_ONLINE_POLL_MS + 5_000;
    while (feedback && feedback.freshAt() < sinceMs) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return feedback !== undefined;
  };

  const trainer = new OnlineTrainer({
    dir,
    statePath: join(dir, "state.json"),
    models,
    policy: {
      everySamples: cfg.RECSYS_ONLINE_EVERY_SAMPLES,
      everyMs: cfg.RECSYS_ONLINE_EVERY_MS,
      minSamples: cfg.RECSYS_ONLINE_MIN_SAMPLES,
    },
    maxBuffer: cfg.RECSYS_ONLINE_MAX_BUFFER,
    keepShards: cfg.RECSYS_ONLINE_KEEP_SHARDS,
    historyLength: cfg.RECSYS_ONLINE_HISTORY_LENGTH,
    histories,
    update,
    feedbackCaughtUp,
    commit: kafka ? (through) => samples!.commit(through) : undefined,
    onPublished:
      bus && kafka
        ? async (model, result) => {
            const record = encodeRecord(
              TOPICS.modelVersions,
              create(ModelVersionPublishedSchema, {
                model,
                version: result.version!,
                path: join(resolve(cfg.RECSYS_MODEL_STORE), model, result.version!),
                publishedAtMs: BigInt(Date.now()),
              }),
            );
            await bus!.publish(topics.of("modelVersions"), [record]);
          }
        : undefined,
    logger,
    metrics,
  });

  const onFeedback = (records: readonly FeedRecord[]) => {
    for (const r of records) {
      try {
        const fb = fromBinary(TOPICS.feedback.schema, r.value);
        if (!fb.eventId || !fb.userId || !fb.itemId) {
          m.badRecords.inc({ topic: "feedback" });
          continue;
        }
        const outcome = histories.addFeedback({
          eventId: fb.eventId,
          userId: fb.userId,
          itemId: fb.itemId,
          type: fb.type,
          value: fb.value,
          timestampMs: Number(fb.timestampMs) || r.timestampMs,
        });
        m.feedback.inc({ outcome });
      } catch (err) {
        m.badRecords.inc({ topic: "feedback" });
        logger.debug({ err, offset: r.offset }, "undecodable feedback record skipped");
      }
    }
  };
  const onSamples = (source: string) => (records: readonly FeedRecord[]) => {
    for (const r of records) {
      try {
        const s = fromBinary(TOPICS.samples.schema, r.value);
        trainer.addSample({
          userId: s.userId,
          itemId: s.itemId,
          timestampMs: Number(s.timestampMs),
          labels: { ...s.labels },
          source,
          topic: r.topic,
          partition: r.partition,
          offset: r.offset,
          next: r.next,
        });
      } catch (err) {
        m.badRecords.inc({ topic: "samples" });
        logger.debug({ err, offset: r.offset }, "undecodable sample record skipped");
      }
    }
  };

  const feedbackTopic = topics.of("feedback");
  const samplesTopic = topics.of("samples");
  if (bus) {
    const prefix = cfg.RECSYS_BUS_TOPIC_PREFIX;
    feedback = await followKafkaTopic({
      bus,
      topic: feedbackTopic,
      groupId: `${prefix}online-trainer-feedback-${hostname()}-${process.pid}`,
      commit: false,
      handle: onFeedback,
    });
    const source = `kafka:${samplesTopic}`;
    samples = await followKafkaTopic({
      bus,
      topic: samplesTopic,
      groupId: `${prefix}online-trainer-samples`,
      commit: "manual",
      handle: onSamples(source),
    });
  } else {
    const busDir = resolve(cfg.RECSYS_BUS_DIR);
    feedback = followEmbeddedLog({
      dir: topicDir(busDir, feedbackTopic),
      topic: feedbackTopic,
      from: 0,
      pollMs: cfg.RECSYS_ONLINE_POLL_MS,
      logger,
      handle: onFeedback,
    });
    const samplesDir = topicDir(busDir, samplesTopic);
    const source = `embedded:${samplesDir}`;
    let from = trainer.resumeFrom(source, 0);
    const end = await embeddedLogEnd(samplesDir);
    if (from > BigInt(end)) {
      logger.warn(
        { dir: samplesDir, end, position: from.toString() },
        "the samples log is shorter than the position already trained on: it was re-created; starting over",
      );
      trainer.resetSource(source);
      from = 0n;
    }
    samples = followEmbeddedLog({
      dir: samplesDir,
      topic: samplesTopic,
      from: Number(from),
      pollMs: cfg.RECSYS_ONLINE_POLL_MS,
      logger,
      handle: onSamples(source),
    });
  }

  const timer = setInterval(() => {
    void trainer.tick()?.catch((err: unknown) => logger.error({ err }, "online update crashed"));
  }, o.tickMs ?? 1_000);
  timer.unref();

  const describe = {
    bus: bus ? "kafka" : "embedded",
    models,
    dir,
    python: python.python,
    everySamples: cfg.RECSYS_ONLINE_EVERY_SAMPLES,
    everyMs: cfg.RECSYS_ONLINE_EVERY_MS,
    minSamples: cfg.RECSYS_ONLINE_MIN_SAMPLES,
    feedback: feedback.source,
    samples: samples.source,
  };
  const feedFeed = feedback;
  const sampleFeed = samples;
  return {
    trainer,
    histories,
    samples: sampleFeed,
    feedback: feedFeed,
    describe,
    async stop() {
      clearInterval(timer);
      await trainer.stop();
      await sampleFeed.stop();
      await feedFeed.stop();
      await bus?.close();
    },
  };
}
