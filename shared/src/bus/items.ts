/**
 * The items topic from a consumer's side: every service that keeps item
 * tables (recall's content index, the ItemCatalog of prerank, rank and
 * rerank) follows ItemUpdate records published by the catalog service.
 *
 * Consumers keep what they learn in memory, so they replay the whole topic
 * at each start (no committed positions) and then follow it live; an update
 * replaces the item, so replays and at-least-once duplicates are harmless.
 *
 * - Kafka: a consumer group of this process only (`<prefix><service>-items-<host>-<pid>`),
 *   from the beginning, never committing. Production needs the items topic
 *   compacted (cleanup.policy=compact), so the replay is every item's latest
 *   version however old.
 * - Embedded bus: the catalog process owns the items log, in its own bus
 *   directory `<RECSYS_BUS_DIR>/catalog` (an embedded bus directory belongs
 *   to one process). Other processes read that log through a read-only
 *   followTail (tail.ts), polled every RECSYS_ITEMS_POLL_MS.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import type { ItemCatalog } from "../catalog.js";
import { type ConfigOf, env } from "../config.js";
import type { ItemRecord } from "../data/dataset.js";
import type { ContentTable } from "../encoder/content-table.js";
import type { ItemUpdate } from "../gen/recsys/events/v1/events_pb.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { type BusConfig, busConfigSpec, kafkaBrokers, openBus } from "./config.js";
import { topicDir } from "./embedded.js";
import { BusMetrics } from "./metrics.js";
import { DeadLetters, decodeValid, type RawRecord } from "./poison.js";
import type { Subscription } from "./port.js";
import { followTail } from "./tail.js";
import { TOPICS, TopicNames } from "./topics.js";

/** Configuration of a service that follows the items topic. */
export const itemFeedConfigSpec = {
  ...busConfigSpec,
  /** Embedded bus: how often the catalog's items log is checked for new records, ms. */
  RECSYS_ITEMS_POLL_MS: env.int(200, 10, 60_000),
};
export type ItemFeedConfig = ConfigOf<typeof itemFeedConfigSpec>;

/** The embedded bus directory the catalog service owns (its items log lives there). */
export function catalogBusDir(cfg: Pick<BusConfig, "RECSYS_BUS_DIR">): string {
  return join(cfg.RECSYS_BUS_DIR, "catalog");
}

export interface ItemFeedOptions {
  readonly service: string;
  readonly cfg: ItemFeedConfig;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Updates in log order; a throw redelivers the batch (after a pause). */
  handle(updates: readonly ItemUpdate[]): void | Promise<void>;
}

export interface ItemFeed {
  /** "kafka" or the embedded log directory followed. */
  readonly source: string;
  caughtUp(): boolean;
  waitCaughtUp(timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** The parts of an ItemUpdate the item tables need. */
export function itemRecordOf(update: ItemUpdate): { record: ItemRecord; createdAtMs: number } {
  const item = update.item;
  return {
    record: {
      itemId: item?.itemId ?? "",
      title: item?.title ?? "",
      genres: [...(item?.genres ?? [])],
      year: item?.year ? item.year : undefined,
    },
    createdAtMs: Number(item?.createdAtMs ?? 0n),
  };
}

export async function followItemUpdates(options: ItemFeedOptions): Promise<ItemFeed> {
  const { cfg, logger } = options;
  const topics = new TopicNames(cfg.RECSYS_BUS_TOPIC_PREFIX);
  const topic = topics.of("items");
  const groupId = `${cfg.RECSYS_BUS_TOPIC_PREFIX}${options.service}-items-${hostname()}-${process.pid}`;
  const metrics = options.metrics ? BusMetrics.of(options.metrics) : undefined;
  // the group id carries host and pid: one dead-letter file per service
  const deadLetters = new DeadLetters(cfg.RECSYS_BUS_DIR, `${options.service}-items`, logger, metrics);
  const handleRaw = async (values: readonly RawRecord[]) => {
    const updates = decodeValid(TOPICS.items.schema, topic, values, deadLetters, (u) =>
      u.item?.itemId ? undefined : "item update without item.item_id",
    ).map((d) => d.message);
    await options.handle(updates);
    metrics?.consumed(groupId, topic, updates.length);
  };

  if (kafkaBrokers(cfg).length > 0) {
    if (!options.metrics) throw new Error("followItemUpdates on Kafka needs the service's metrics");
    const { bus } = await openBus(options.service, cfg, logger, options.metrics);
    let sub: Subscription;
    try {
      sub = await bus.subscribe({
        groupId,
        topics: [topic],
        fromBeginning: true,
        commit: false,
        handle: (batch) => handleRaw(batch),
      });
    } catch (err) {
      await bus.close();
      throw err;
    }
    return {
      source: "kafka",
      caughtUp: () => sub.caughtUp(),
      waitCaughtUp: (ms) => sub.waitCaughtUp(ms),
      async stop() {
        await sub.stop();
        await bus.close();
      },
    };
  }

  const dir = topicDir(catalogBusDir(cfg), topic);
  const followed = followTail({
    dir,
    from: 0,
    pollMs: cfg.RECSYS_ITEMS_POLL_MS,
    logger,
    label: "items",
    handle: (records) => handleRaw(records),
  });
  return {
    source: dir,
    caughtUp: () => followed.caughtUp(),
    waitCaughtUp: (ms) => followed.waitCaughtUp(ms),
    stop: () => followed.stop(),
  };
}

/**
 * Follows the items topic into an ItemCatalog (titles, genres, ages of new
 * and changed items) and, when given, a ContentTable (their content vectors;
 * vectors of another encoder are skipped and logged now and then).
 */
export function followItemsIntoCatalog(
  options: Omit<ItemFeedOptions, "handle"> & {
    readonly catalog: ItemCatalog;
    readonly content?: ContentTable;
  },
): Promise<ItemFeed> {
  const { catalog, content, logger } = options;
  return followItemUpdates({
    ...options,
    handle(updates) {
      for (const update of updates) {
        const { record, createdAtMs } = itemRecordOf(update);
        if (!record.itemId) continue;
        catalog.upsert(record, createdAtMs);
        if (content?.upsert(record.itemId, update.contentVector, update.encoder) === "incompatible") {
          if (content.skipped % 1000 === 1)
            logger.warn(
              {
                itemId: record.itemId,
                encoder: update.encoder,
                dim: update.contentVector.length,
                skipped: content.skipped,
              },
              "item update with an incompatible content vector: not used",
            );
        }
      }
    },
  });
}
