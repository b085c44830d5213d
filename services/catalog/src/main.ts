/**
 * The catalog service: CatalogService.UpsertItems. Health is NOT_SERVING
 * until the item store is open and the text encoder loaded, and goes back
 * to NOT_SERVING when the encoder fails at run time; meanwhile the encoder
 * is loaded again every RECSYS_ENCODER_RETRY_MS.
 *
 * Items are published on the items topic: Kafka when RECSYS_KAFKA_BROKERS is
 * set, otherwise an embedded bus this process owns, `<RECSYS_BUS_DIR>/catalog`
 * (other processes tail its items log read-only; docs/event-bus.md).
 */
import { createRuntime, EncoderLoadError, loadItems, OnnxPool, SentenceEncoder } from "@recsys/shared";
import { catalogBusDir, encodeRecord, openBus, TOPICS, withTimeout } from "@recsys/shared/bus";
import { CatalogService } from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";
import { catalogConfigSpec } from "./config.js";
import { CatalogStore } from "./store.js";
import { CatalogUpserter, sentenceEmbedder, type TextEmbedder } from "./upsert.js";
import { checkModalityConfig } from "./validate.js";

const rt = createRuntime("catalog", catalogConfigSpec);
const cfg = rt.config;
try {
  checkModalityConfig(cfg.RECSYS_CATALOG_MODALITIES, "RECSYS_CATALOG_MODALITIES");
} catch (err) {
  process.stderr.write(`catalog: invalid configuration:\n  ${(err as Error).message}\n`);
  process.exit(2);
}

let upserter: CatalogUpserter | undefined;
let embedder: TextEmbedder | undefined;

rt.server.add(CatalogService, {
  async upsertItems(req, ctx) {
    rt.requireReady();
    return upserter!.upsert(req, ctx.signal);
  },
});

await rt.start(cfg.RECSYS_CATALOG_ADDR);
const store = await CatalogStore.open(cfg.RECSYS_CATALOG_STORE_DIR, {
  // A damaged line was moved to items.jsonl.corrupt: an operator decides what it was.
  onDamage: (d) =>
    rt.fault(`damaged line ${d.line} of the item store (${d.reason}), moved to ${d.quarantinedTo}`),
});
rt.onShutdown(() => store.close());
let datasetItemIds = new Set<string>();
try {
  datasetItemIds = new Set((await loadItems(cfg.RECSYS_DATA_DIR)).map((i) => i.itemId));
} catch (err) {
  rt.logger.warn({ err, dir: cfg.RECSYS_DATA_DIR }, "no dataset items: every new id counts as created");
}

const busCfg = cfg.RECSYS_KAFKA_BROKERS ? cfg : { ...cfg, RECSYS_BUS_DIR: catalogBusDir(cfg) };
const { bus, topics } = await openBus("catalog", busCfg, rt.logger, rt.metrics, (d) =>
  rt.fault(`damaged log region in ${d.segment} at offset ${d.offset}`),
);
rt.onShutdown(() => bus.close());
const itemsTopic = topics.of("items");

const pool = new OnnxPool({ threads: cfg.RECSYS_ENCODER_THREADS });
rt.onShutdown(() => pool.close());

upserter = new CatalogUpserter({
  limits: {
    maxBatch: cfg.RECSYS_CATALOG_MAX_BATCH,
    maxTextBytes: cfg.RECSYS_CATALOG_MAX_TEXT_BYTES,
    modalities: cfg.RECSYS_CATALOG_MODALITIES,
  },
  fusion: { rule: cfg.RECSYS_CATALOG_FUSION, weights: cfg.RECSYS_CATALOG_FUSION_WEIGHTS },
  store,
  embedder: () => embedder,
  datasetItemIds,
  publish: (updates) =>
    withTimeout(
      bus.publish(
        itemsTopic,
        updates.map((u) => encodeRecord(TOPICS.items, u)),
        { sync: true },
      ),
      cfg.RECSYS_BUS_SEND_TIMEOUT_MS,
      "publishing to the items topic timed out",
    ),
  onEncoderFailure: (err) => {
    rt.logger.error({ err }, "text encoder failed: reloading it");
    embedder = undefined;
    rt.notReady("text encoder failed");
    void loadEncoder();
  },
});

let loading: Promise<void> | undefined;
function loadEncoder(): Promise<void> {
  loading ??= (async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        const t0 = performance.now();
        const encoder = await SentenceEncoder.load(cfg.RECSYS_ENCODER_DIR, pool);
        embedder = sentenceEmbedder(encoder);
        rt.metrics.setModelVersion("catalog.encoder", embedder.name);
        rt.logger.info(
          { encoder: embedder.name, ms: Math.round(performance.now() - t0), items: store.size },
          "text encoder loaded",
        );
        rt.ready();
        return;
      } catch (err) {
        const reason = err instanceof EncoderLoadError ? err.message : String(err);
        rt.logger.error(
          { dir: cfg.RECSYS_ENCODER_DIR, reason, attempt, retryMs: cfg.RECSYS_ENCODER_RETRY_MS },
          "cannot load the text encoder: health stays NOT_SERVING",
        );
        await new Promise((r) => setTimeout(r, cfg.RECSYS_ENCODER_RETRY_MS).unref());
      }
    }
  })().finally(() => {
    loading = undefined;
  });
  return loading;
}

rt.logger.info(
  {
    items: store.size,
    store: store.path,
    bus: bus.kind,
    topic: itemsTopic,
    modalities: cfg.RECSYS_CATALOG_MODALITIES,
    fusion: cfg.RECSYS_CATALOG_FUSION,
  },
  "catalog store open",
);
void loadEncoder();
