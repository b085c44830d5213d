/**
 * The item tables of a process: the dataset's catalogue (with its
 * interactions), the model store's content vectors, and one follower of the
 * items topic that keeps both current. Every service of the process that
 * opens the same dataset, store and bus gets the same tables: the co-located
 * layout runs the gateway, prerank, rank and rerank in one process, which
 * then holds one catalogue, one content table and one items follower instead
 * of four, three and three. A service on a worker thread of its own (recall)
 * has its own module instance and so its own tables.
 *
 * The tables are read-only for the services; only the follower writes them
 * (an item update replaces the item). The follower reports to the metrics
 * registry of the service that opened the tables first, and stops when the
 * last service that opened it releases the tables.
 */
import { type ItemCatalog, loadCatalog } from "../catalog.js";
import type { Interaction } from "../data/dataset.js";
import { ContentTable } from "../encoder/content-table.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { Runtime } from "../runtime.js";
import type { BusConfig } from "./config.js";
import { followItemsIntoCatalog, type ItemFeed, type ItemFeedConfig } from "./items.js";

/** The bus settings identify the tables; the follower also needs RECSYS_ITEMS_POLL_MS (itemFeedConfigSpec). */
export type ItemTablesConfig = BusConfig &
  Partial<ItemFeedConfig> & {
    readonly RECSYS_DATA_DIR: string;
    readonly RECSYS_MODEL_STORE: string;
  };

export interface ItemTables {
  readonly catalog: ItemCatalog;
  readonly interactions: readonly Interaction[];
  /** The content vectors (opened with `content: true`; the follower keeps them current too). */
  readonly content?: ContentTable;
  /** The items follower (opened with `follow: true`); wait for it before serving. */
  readonly feed?: ItemFeed;
  /** This service is done with the tables; the follower stops with the last one. */
  release(): Promise<void>;
}

interface Shared {
  readonly catalog: Promise<{ catalog: ItemCatalog; interactions: Interaction[] }>;
  content?: ContentTable;
  feed?: Promise<ItemFeed>;
  users: number;
}

const byKey = new Map<string, Shared>();

/**
 * The tables of `cfg`'s dataset and model store, shared by the services of
 * this process.
 */
export async function openItemTables(options: {
  readonly service: string;
  readonly cfg: ItemTablesConfig;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Load the content vectors. */
  readonly content: boolean;
  /** Start (or join) the items follower (it loads the content vectors too). */
  readonly follow: boolean;
}): Promise<ItemTables> {
  const { cfg, logger } = options;
  const key = [
    cfg.RECSYS_DATA_DIR,
    cfg.RECSYS_MODEL_STORE,
    cfg.RECSYS_BUS_DIR,
    cfg.RECSYS_BUS_TOPIC_PREFIX,
    cfg.RECSYS_KAFKA_BROKERS,
  ].join("\u0000");
  let shared = byKey.get(key);
  if (!shared) {
    shared = { catalog: loadCatalog(cfg.RECSYS_DATA_DIR), users: 0 };
    byKey.set(key, shared);
  } else
    logger.info({ dataDir: cfg.RECSYS_DATA_DIR }, "item tables shared with another service of this process");
  shared.users++;
  const { catalog, interactions } = await shared.catalog;
  // Content vectors (model features, MMR): the dataset's from the `content` model, new items' from the
  // items topic. A follower started before them would not have written them: they are loaded first.
  // The follower writes both tables, so it needs the content table from its start.
  if (options.content || options.follow) shared.content ??= ContentTable.load(cfg.RECSYS_MODEL_STORE, logger);
  const content = shared.content;
  if (options.follow && cfg.RECSYS_ITEMS_POLL_MS === undefined)
    throw new Error(`${options.service}: following the items topic needs the itemFeedConfigSpec settings`);
  if (options.follow && !shared.feed) logger.info({ dataDir: cfg.RECSYS_DATA_DIR }, "items follower started");
  if (options.follow)
    shared.feed ??= followItemsIntoCatalog({
      service: options.service,
      cfg: cfg as ItemFeedConfig,
      logger,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      catalog,
      ...(content ? { content } : {}),
    });
  const feed = shared.feed ? await shared.feed : undefined;
  let released = false;
  const own = shared;
  return {
    catalog,
    interactions,
    ...(content ? { content } : {}),
    ...(feed ? { feed } : {}),
    async release() {
      if (released) return;
      released = true;
      if (--own.users > 0) return;
      byKey.delete(key);
      if (own.feed) await (await own.feed).stop();
    },
  };
}

/**
 * The item tables of a stage that scores items (prerank, rank, rerank): with
 * the content vectors and the items follower, released when the service
 * stops, and caught up with the items topic (up to 10 s) before it returns.
 */
export async function stageItemTables(
  rt: Pick<Runtime<ItemTablesConfig>, "config" | "logger" | "metrics" | "onShutdown">,
  service: string,
): Promise<{ readonly catalog: ItemCatalog; readonly content: ContentTable }> {
  const tables = await openItemTables({
    service,
    cfg: rt.config,
    logger: rt.logger,
    metrics: rt.metrics,
    content: true,
    follow: true,
  });
  rt.onShutdown(() => tables.release());
  await tables.feed!.waitCaughtUp(10_000);
  return { catalog: tables.catalog, content: tables.content! };
}
