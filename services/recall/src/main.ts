import {
  createRuntime,
  encodeCandidates,
  loadCatalog,
  ModelWatcher,
  OnnxPool,
  requireIntInRange,
  requireMaxLength,
  requireUser,
} from "@recsys/shared";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import { PopularCandidateSource } from "./channels/popular.js";
import { SequenceCandidateSource } from "./channels/sequence.js";
import { SwingCandidateSource } from "./channels/swing.js";
import { recallConfigSpec } from "./config.js";
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
const { catalog, interactions } = await loadCatalog(cfg.RECSYS_DATA_DIR);
const timeoutMs = cfg.RECSYS_RECALL_CHANNEL_TIMEOUT_MS;
const quotaOf = (id: string) => cfg.RECSYS_RECALL_QUOTAS[id] ?? 0;
const channels: ChannelConfig[] = [];

// Sequence models (KuaiFormer; optionally the SASRec baseline), hot-swapped from the model store.
const pool = new OnnxPool({ threads: cfg.RECSYS_ONNX_THREADS });
rt.onShutdown(() => pool.close());
for (const name of cfg.RECSYS_SEQUENCE_MODELS.split(",")
  .map((s) => s.trim())
  .filter(Boolean)) {
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

const swing = SwingCandidateSource.load(cfg.RECSYS_MODEL_STORE, cfg.RECSYS_SWING_SEEDS);
channels.push({ source: swing, quota: quotaOf("swing"), timeoutMs });
versionSources.push({ id: "swing", version: () => swing.version });
rt.metrics.setModelVersion("recall.swing", swing.version);

const popular = new PopularCandidateSource(interactions, catalog.latestMs, cfg.RECSYS_POPULAR_HALF_LIFE_DAYS);
channels.push({ source: popular, quota: quotaOf("popular"), timeoutMs });
versionSources.push({ id: "popular", version: () => popular.version });
rt.metrics.setModelVersion("recall.popular", popular.version);

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
  },
  "recall channels loaded",
);
rt.ready();
