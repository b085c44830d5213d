import { join } from "node:path";
import {
  createRuntime,
  ENCODER_DIM,
  EventType,
  encodeCandidates,
  groupByUser,
  loadCatalog,
  loadContentEmbeddings,
  ModelWatcher,
  OnnxPool,
  requireIntInRange,
  requireMaxLength,
  requireUser,
  SentenceEncoder,
} from "@recsys/shared";
import { followItemUpdates, itemRecordOf } from "@recsys/shared/bus";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import { FreshCandidateSource, NewItemSet } from "./channels/fresh.js";
import { GenerativeCandidateSource } from "./channels/generative.js";
import { PopularCandidateSource } from "./channels/popular.js";
import { QueryCandidateSource } from "./channels/query.js";
import { SequenceCandidateSource } from "./channels/sequence.js";
import { SwingCandidateSource } from "./channels/swing.js";
import { recallConfigSpec } from "./config.js";
import { ContentIndex } from "./content/content-index.js";
import { type GenerativeModel, loadGenerativeModel } from "./models/generative-model.js";
import { loadSequenceModel, type SequenceModel } from "./models/sequence-model.js";
import { type ChannelConfig, RecallPipeline } from "./recall.js";

const rt = createRuntime("recall", recallConfigSpec);
const cfg = rt.config;
let pipeline: RecallPipeline | undefined;
const versionSources: Array<{ id: string; version: () => string | undefined }> = [];

rt.server.add(RecallService, {
  async recall(req, ctx) {
    rt.requireReady();
    const user = requireUser(req.user);
    requireMaxLength(req.excludeItemIds, "exclude_item_ids", 10_000);
    const maxCandidates =
      req.maxCandidates === 0
        ? cfg.RECSYS_RECALL_MAX_CANDIDATES
        : requireIntInRange(req.maxCandidates, "max_candidates", 1, cfg.RECSYS_RECALL_MAX_CANDIDATES);
    for (const [channel, quota] of Object.entries(req.channelQuotas)) {
      requireIntInRange(quota, `channel_quotas[${channel}]`, 0, cfg.RECSYS_RECALL_MAX_CANDIDATES);
    }
    const result = await pipeline!.run({
      requestId: ctx.requestId,
      user,
      scene: req.scene,
      query: req.query,
      deadline: ctx.deadline,
      signal: ctx.signal,
      excludeItemIds: req.excludeItemIds,
      maxCandidates,
      quotaOverrides: req.channelQuotas,
    });
    const modelVersions: Record<string, string> = {};
    for (const s of versionSources) modelVersions[s.id] = s.version() ?? "none";
    return {
      candidates: encodeCandidates(result.candidates),
      channels: result.channels,
      degradations: result.degradations,
      modelVersions,
    };
  },
});

await rt.start(cfg.RECSYS_RECALL_ADDR);
const loadStarted = performance.now();
/** Milliseconds since start-up at which each part was loaded (logged once SERVING). */
const loadedAtMs: Record<string, number> = {};
const mark = (part: string) => {
  loadedAtMs[part] = Math.round(performance.now() - loadStarted);
};
// The query encoder loads on its own pool (the pool keeps two sessions per worker) while the rest loads.
const encoderPool = new OnnxPool({ threads: 1 });
rt.onShutdown(() => encoderPool.close());
let queryEncoder: SentenceEncoder | undefined;
const encoderLoaded = SentenceEncoder.load(cfg.RECSYS_ENCODER_DIR, encoderPool).then(
  (encoder) => {
    queryEncoder = encoder;
    mark("encoder");
  },
  (err: unknown) =>
    rt.logger.warn(
      { err, dir: cfg.RECSYS_ENCODER_DIR },
      "no text encoder: the query channel fails open (run scripts/fetch-encoder.sh)",
    ),
);
const { catalog, interactions } = await loadCatalog(cfg.RECSYS_DATA_DIR);
mark("dataset");
const timeoutMs = cfg.RECSYS_RECALL_CHANNEL_TIMEOUT_MS;
const quotaOf = (id: string) => cfg.RECSYS_RECALL_QUOTAS[id] ?? 0;
const channels: ChannelConfig[] = [];

// Sequence models (KuaiFormer; optionally the SASRec baseline), hot-swapped from the model store.
const sequenceModels = cfg.RECSYS_SEQUENCE_MODELS.split(",")
  .map((s) => s.trim())
  .filter(Boolean);
// sessions per worker: one per sequence model and two for the generative model's graphs, twice over for hot swaps
const pool = new OnnxPool({
  threads: cfg.RECSYS_ONNX_THREADS,
  maxSessions: 2 * (sequenceModels.length + (cfg.RECSYS_GENERATIVE_MODEL ? 2 : 0)),
});
rt.onShutdown(() => pool.close());
for (const name of sequenceModels) {
  const watcher = new ModelWatcher<SequenceModel>({
    store: cfg.RECSYS_MODEL_STORE,
    model: name,
    logger: rt.logger,
    metrics: rt.metrics,
    pollMs: cfg.RECSYS_MODEL_POLL_MS,
    load: (dir, manifest) => loadSequenceModel(name, dir, manifest, pool, { efSearch: cfg.RECSYS_HNSW_EF }),
  });
  await watcher.start();
  if (!watcher.current())
    rt.logger.warn(
      { model: name },
      "no loadable model version yet; the channel fails open until one is published",
    );
  const source = new SequenceCandidateSource(name, watcher, pool, rt.metrics);
  channels.push({ source, quota: quotaOf(name), timeoutMs });
  versionSources.push({ id: name, version: () => source.version });
}

// Generative retrieval (semantic IDs, beam search), hot-swapped like the sequence models.
let generative: GenerativeCandidateSource | undefined;
if (cfg.RECSYS_GENERATIVE_MODEL) {
  const watcher = new ModelWatcher<GenerativeModel>({
    store: cfg.RECSYS_MODEL_STORE,
    model: cfg.RECSYS_GENERATIVE_MODEL,
    logger: rt.logger,
    metrics: rt.metrics,
    pollMs: cfg.RECSYS_MODEL_POLL_MS,
    load: (dir, manifest) => loadGenerativeModel(dir, manifest, pool),
  });
  await watcher.start();
  if (!watcher.current())
    rt.logger.warn(
      { model: cfg.RECSYS_GENERATIVE_MODEL },
      "no loadable generative model yet; the channel fails open until one is published",
    );
  const source = new GenerativeCandidateSource(watcher, pool, rt.metrics, cfg.RECSYS_GENERATIVE_MAX_BEAM);
  generative = source;
  channels.push({ source, quota: quotaOf(source.id), timeoutMs });
  versionSources.push({ id: source.id, version: () => source.version });
}

const swing = SwingCandidateSource.load(cfg.RECSYS_MODEL_STORE, cfg.RECSYS_SWING_SEEDS);
mark("sequence models and swing");
channels.push({ source: swing, quota: quotaOf("swing"), timeoutMs });
versionSources.push({ id: "swing", version: () => swing.version });
rt.metrics.setModelVersion("recall.swing", swing.version);

// Content channels: the content index (dataset items from the `content` model, new items from the
// items topic) serves `fresh` (new items near the user's content profile) and `query` (free text).
const contentOptions = {
  m: cfg.RECSYS_CONTENT_HNSW_M,
  efConstruction: cfg.RECSYS_CONTENT_HNSW_EF_CONSTRUCTION,
  efSearch: cfg.RECSYS_CONTENT_HNSW_EF,
};
let contentIndex: ContentIndex;
let contentVersion = "none";
let contentEncoderSha = "";
try {
  const content = loadContentEmbeddings(cfg.RECSYS_MODEL_STORE);
  contentIndex = ContentIndex.of(content.itemIds, content.vectors, content.dim, contentOptions);
  contentVersion = content.version;
  contentEncoderSha = String(
    (content.manifest.encoder as { onnx_sha256?: string } | undefined)?.onnx_sha256 ?? "",
  );
} catch (err) {
  rt.logger.warn(
    { err, store: cfg.RECSYS_MODEL_STORE },
    "no content embeddings: the content index holds only catalog items (run scripts/content-embeddings.sh)",
  );
  contentIndex = new ContentIndex(ENCODER_DIM, 1024, contentOptions);
}
rt.metrics.setModelVersion("recall.content", contentVersion);
// The HNSW graph (2-4 s of CPU for 9k items) builds on a worker thread while the rest loads, so the
// event loop stays free; SERVING waits for it (an exact scan would cost ~8 ms per query).
const graphStarted = performance.now();
const graphCache =
  cfg.RECSYS_CONTENT_GRAPH_CACHE_DIR && contentVersion !== "none"
    ? join(
        cfg.RECSYS_CONTENT_GRAPH_CACHE_DIR,
        `content-${contentVersion}-n${contentIndex.size}-d${contentIndex.dim}-m${contentOptions.m}-efc${contentOptions.efConstruction}.hnsw`,
      )
    : undefined;
const graphBuilt = contentIndex
  .buildGraphInWorker(graphCache)
  .catch(async (err: unknown) => {
    rt.logger.warn({ err }, "content graph worker failed: building the graph on the main thread");
    await contentIndex.buildGraph();
    return { cached: false };
  })
  .then(({ cached }) => {
    mark("content graph");
    rt.logger.info(
      {
        items: contentIndex.size,
        cached,
        cache: graphCache,
        ms: Math.round(performance.now() - graphStarted),
      },
      "content index graph complete",
    );
  });
const newItems = NewItemSet.fromCatalog(catalog, cfg.RECSYS_FRESH_MAX_AGE_DAYS * 86_400_000);
const fresh = new FreshCandidateSource(contentIndex, newItems, { seeds: cfg.RECSYS_CONTENT_PROFILE_SEEDS });
channels.push({ source: fresh, quota: quotaOf("fresh"), timeoutMs });
versionSources.push({ id: "fresh", version: () => `${fresh.version}/${contentVersion}` });
const query = new QueryCandidateSource(contentIndex, () => queryEncoder, {
  personalisationWeight: cfg.RECSYS_QUERY_PERSONALISATION_WEIGHT,
  minSimilarity: cfg.RECSYS_QUERY_MIN_SIMILARITY,
  relativeSimilarity: cfg.RECSYS_QUERY_RELATIVE_SIMILARITY,
  seeds: cfg.RECSYS_CONTENT_PROFILE_SEEDS,
});
channels.push({ source: query, quota: quotaOf("query"), timeoutMs });
versionSources.push({ id: "query", version: () => `${query.version}/${contentVersion}` });

const popular = new PopularCandidateSource(interactions, catalog.latestMs, cfg.RECSYS_POPULAR_HALF_LIFE_DAYS);
channels.push({ source: popular, quota: quotaOf("popular"), timeoutMs });
versionSources.push({ id: "popular", version: () => popular.version });
rt.metrics.setModelVersion("recall.popular", popular.version);

// New and changed items from the catalog service (replayed from the start of the items topic).
let skippedVectors = 0;
const itemFeed = await followItemUpdates({
  service: "recall",
  cfg,
  logger: rt.logger,
  metrics: rt.metrics,
  handle(updates) {
    for (const update of updates) {
      const { record, createdAtMs } = itemRecordOf(update);
      if (!record.itemId) continue;
      catalog.upsert(record, createdAtMs);
      newItems.noteCreated(record.itemId, createdAtMs);
      const vector = update.contentVector;
      if (vector.length === 0) continue;
      // Vectors of another encoder live in another space: never mix them into the index.
      const sha = /@([0-9a-f]+)/.exec(update.encoder)?.[1] ?? "";
      if (
        vector.length !== contentIndex.dim ||
        (contentEncoderSha && !(sha && contentEncoderSha.startsWith(sha)))
      ) {
        if (skippedVectors++ % 1000 === 0)
          rt.logger.warn(
            { itemId: record.itemId, encoder: update.encoder, dim: vector.length, skippedVectors },
            "item update with an incompatible content vector: not indexed",
          );
        continue;
      }
      contentIndex.upsert(record.itemId, vector);
      generative?.upsert(record.itemId, Float32Array.from(vector));
    }
  },
});
rt.onShutdown(() => itemFeed.stop());
const itemsCaughtUp = await itemFeed.waitCaughtUp(10_000);
mark("items topic");
await encoderLoaded;
await graphBuilt;
mark("all");
// Warm the content channels (JIT, the encoder's first runs) with a made-up user of dataset items.
const warmUser = {
  userId: "warm-up",
  known: true,
  blockedItemIds: [],
  earlierSeenItemIds: [],
  history: [...catalog.items.keys()].slice(0, 20).map((itemId, i) => ({
    itemId,
    timestampMs: i,
    type: EventType.RATING,
    value: 5,
  })),
};
const warmCtx = {
  requestId: "warm-up",
  scene: "",
  query: "",
  deadline: Number.POSITIVE_INFINITY,
  user: warmUser,
};
fresh.fetch(warmCtx, 100);
if (queryEncoder)
  await query.warmUp(warmCtx).catch((err: unknown) => rt.logger.warn({ err }, "query warm-up failed"));

pipeline = new RecallPipeline(
  channels,
  () =>
    popular.fetch(undefined, cfg.RECSYS_RECALL_MAX_CANDIDATES).map((c) => ({ ...c, channels: ["popular"] })),
  rt.metrics,
);
rt.logger.info(
  {
    items: catalog.size,
    interactions: interactions.length,
    channels: channels.map((c) => `${c.source.id}:${c.quota}`),
    contentItems: contentIndex.size,
    newItems: newItems.ids().length,
    itemFeed: itemFeed.source,
    itemsCaughtUp,
    queryEncoder: queryEncoder ? "loaded" : "missing",
    loadedAtMs,
  },
  "recall channels loaded",
);
await warmUp();
rt.ready();

/**
 * Runs real users through every channel before health turns SERVING, so a
 * restarted pod does not answer its first requests with a cold JIT, ONNX
 * session and index (those first calls used to overrun the 25 ms budget).
 */
async function warmUp(): Promise<void> {
  const started = performance.now();
  const byUser = groupByUser(interactions);
  const users = [...byUser.keys()].slice(0, 30);
  for (const userId of users) {
    const history = byUser
      .get(userId)!
      .slice(-256)
      .map((r) => ({
        itemId: r.itemId,
        timestampMs: r.timestampMs,
        type: EventType.RATING,
        value: r.rating,
      }));
    await pipeline!.run({
      requestId: `warmup-${userId}`,
      user: { userId, known: true, blockedItemIds: [], earlierSeenItemIds: [], history },
      scene: "warmup",
      query: "",
      deadline: Date.now() + 5_000,
      excludeItemIds: [],
      maxCandidates: cfg.RECSYS_RECALL_MAX_CANDIDATES,
      quotaOverrides: {},
    });
  }
  rt.logger.info({ users: users.length, ms: Math.round(performance.now() - started) }, "warm-up done");
}
