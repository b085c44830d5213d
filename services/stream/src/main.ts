/**
 * The stream service: its own process and consumer groups on Kafka, writing
 * user sequences and trending scores to Redis and samples to Kafka. Without
 * Kafka there is nothing for it to do: in embedded mode the gateway runs the
 * same processor in-process (docs/event-bus.md).
 */
import { createRuntime, loadInteractions } from "@recsys/shared";
import { kafkaBrokers, openBus } from "@recsys/shared/bus";
import { RedisUserStateStore } from "@recsys/shared/userstate-redis";
import { streamConfigSpec } from "./config.js";
import { StreamProcessor } from "./processor.js";
import { datasetTag } from "./seed.js";
import { RedisTrendingSink } from "./trending.js";

const rt = createRuntime("stream", streamConfigSpec);
const cfg = rt.config;
if (kafkaBrokers(cfg).length === 0 || !cfg.RECSYS_REDIS_URL) {
  process.stderr.write(
    "stream: RECSYS_KAFKA_BROKERS and RECSYS_REDIS_URL are required " +
      "(in embedded mode the gateway runs the stream processor in-process)\n",
  );
  process.exit(2);
}
await rt.start(cfg.RECSYS_STREAM_ADDR);

const store = await RedisUserStateStore.connect({
  url: cfg.RECSYS_REDIS_URL,
  prefix: cfg.RECSYS_REDIS_PREFIX,
  logger: rt.logger,
  maxSequenceLength: cfg.RECSYS_HISTORY_LENGTH,
  timeoutMs: cfg.RECSYS_REDIS_TIMEOUT_MS,
});
// The dataset's histories are imported once per dataset (idempotent per
// user); an empty Redis (restarted without persistence) is refilled.
const interactions = await loadInteractions(cfg.RECSYS_DATA_DIR);
const tag = datasetTag(cfg.RECSYS_DATA_DIR, interactions);
const seed = async () => {
  const t0 = performance.now();
  const users = await store.seedOnce(tag, interactions);
  if (users > 0)
    rt.logger.info({ users, tag, ms: Math.round(performance.now() - t0) }, "user state imported");
};
for (let attempt = 1; ; attempt++) {
  try {
    await seed();
    break;
  } catch (err) {
    if (attempt === 1) rt.logger.warn({ err }, "redis not ready for the import yet; retrying");
    await new Promise((r) => setTimeout(r, 500));
  }
}
store.client.on("ready", () => void seed().catch((err) => rt.logger.warn({ err }, "re-import failed")));

const { bus, topics } = await openBus("stream", cfg, rt.logger, rt.metrics, (d) =>
  rt.fault(`damaged log region in ${d.segment} at offset ${d.offset}`),
);
const processor = new StreamProcessor({
  deadLetterDir: cfg.RECSYS_BUS_DIR,
  bus,
  topics,
  store,
  logger: rt.logger,
  metrics: rt.metrics,
  groupPrefix: cfg.RECSYS_BUS_TOPIC_PREFIX,
  userState: { commit: true },
  samples: {
    attributionWindowMs: cfg.RECSYS_ATTRIBUTION_WINDOW_MS,
    likeRatingThreshold: cfg.RECSYS_LIKE_RATING_THRESHOLD,
  },
  trending: new RedisTrendingSink(
    store.client,
    cfg.RECSYS_REDIS_PREFIX,
    cfg.RECSYS_TRENDING_HALF_LIFE_MS,
    cfg.RECSYS_TRENDING_TOP,
    rt.logger,
  ),
});
await processor.start();
rt.onShutdown(async () => {
  await processor.stop();
  await bus.close();
  await store.close();
});
rt.logger.info({ topics: topics.all(), redis: cfg.RECSYS_REDIS_URL }, "stream processor running");
rt.ready();
