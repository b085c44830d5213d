/**
 * Bus configuration shared by every service that produces or consumes
 * events, and the factory that picks the adapter: Kafka when
 * RECSYS_KAFKA_BROKERS is set, the embedded on-disk bus otherwise.
 */
import { join } from "node:path";
import { type ConfigOf, env } from "../config.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { EmbeddedBus } from "./embedded.js";
import { KafkaBus, processClientId } from "./kafka.js";
import type { LogDamage } from "./log.js";
import { BusMetrics } from "./metrics.js";
import { type EventBus, pause, withTimeout } from "./port.js";
import { TopicNames } from "./topics.js";

export const busConfigSpec = {
  /** Comma-separated host:port list. Empty: the embedded bus (files under RECSYS_BUS_DIR). */
  RECSYS_KAFKA_BROKERS: env.str(""),
  /** Partitions of topics created at start-up. */
  RECSYS_KAFKA_PARTITIONS: env.int(3, 1, 1_000),
  /** Replication factor of topics created at start-up. */
  RECSYS_KAFKA_REPLICATION_FACTOR: env.int(1, 1, 10),
  /** Prefix of every topic name, so several stacks can share a broker. */
  RECSYS_BUS_TOPIC_PREFIX: env.str(""),
  /** Embedded bus: directory of the topic logs and consumer positions. */
  RECSYS_BUS_DIR: env.str("var/bus"),
  /** Embedded bus: bytes kept per topic before the oldest segments are deleted. */
  RECSYS_BUS_RETENTION_BYTES: env.int(1024 * 1024 * 1024, 1024 * 1024),
  /** A Kafka publish slower than this is spilled to local disk instead. */
  RECSYS_BUS_SEND_TIMEOUT_MS: env.int(2_000, 50, 60_000),
  /** Where records wait while Kafka is unavailable. Default var/spill/<service>. */
  RECSYS_SPILL_DIR: env.str(""),
};

export type BusConfig = ConfigOf<typeof busConfigSpec>;

export function kafkaBrokers(cfg: BusConfig): string[] {
  return cfg.RECSYS_KAFKA_BROKERS.split(",")
    .map((b) => b.trim())
    .filter(Boolean);
}

export function spillDir(cfg: BusConfig, service: string): string {
  return cfg.RECSYS_SPILL_DIR || join("var", "spill", service);
}

/** Opens the configured bus and creates the contract's topics when missing. */
export async function openBus(
  service: string,
  cfg: BusConfig,
  logger: Logger,
  metrics: Metrics,
  /** The owner's reaction to a damaged embedded log (e.g. `rt.fault`). */
  onDamage?: (damage: LogDamage) => void,
): Promise<{ bus: EventBus; topics: TopicNames }> {
  const topics = new TopicNames(cfg.RECSYS_BUS_TOPIC_PREFIX);
  const busMetrics = BusMetrics.of(metrics);
  const brokers = kafkaBrokers(cfg);
  const bus: EventBus =
    brokers.length > 0
      ? new KafkaBus({
          brokers,
          clientId: processClientId(service),
          logger,
          metrics: busMetrics,
          partitions: cfg.RECSYS_KAFKA_PARTITIONS,
          replicationFactor: cfg.RECSYS_KAFKA_REPLICATION_FACTOR,
        })
      : EmbeddedBus.open({
          dir: cfg.RECSYS_BUS_DIR,
          logger,
          metrics: busMetrics,
          retentionBytes: cfg.RECSYS_BUS_RETENTION_BYTES,
          onDamage,
        });
  // A broker that is down at start-up must not stop the service: publishes
  // spill to disk meanwhile, and the topics are created once it answers.
  const ensure = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await withTimeout(bus.ensureTopics(topics.all()), 10_000, "creating topics timed out");
        return;
      } catch (err) {
        if (attempt === 1)
          logger.warn({ err }, "event bus: cannot create topics yet; retrying in the background");
        await pause(Math.min(10_000, 500 * attempt));
      }
    }
  };
  const ensured = ensure();
  await Promise.race([ensured, pause(5_000)]);
  logger.info(
    {
      bus: bus.kind,
      brokers: brokers.length > 0 ? brokers : undefined,
      dir: brokers.length ? undefined : cfg.RECSYS_BUS_DIR,
    },
    "event bus open",
  );
  return { bus, topics };
}
