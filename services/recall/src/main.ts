import {
  createRuntime,
  encodeCandidates,
  loadCatalog,
  type Metrics,
  requireIntInRange,
  requireMaxLength,
  requireUser,
} from "@recsys/shared";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import { PopularCandidateSource } from "./channels/popular.js";
import { SwingCandidateSource } from "./channels/swing.js";
import { recallConfigSpec } from "./config.js";
import { type ChannelConfig, RecallPipeline } from "./recall.js";

const rt = createRuntime("recall", recallConfigSpec);
const cfg = rt.config;
let pipeline: RecallPipeline | undefined;
let versions: Record<string, string> = {};

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
    return {
      candidates: encodeCandidates(result.candidates),
      channels: result.channels,
      degradations: result.degradations,
      modelVersions: versions,
    };
  },
});

await rt.start(cfg.RECSYS_RECALL_ADDR);
const { catalog, interactions } = await loadCatalog(cfg.RECSYS_DATA_DIR);
const popular = new PopularCandidateSource(interactions, catalog.latestMs, cfg.RECSYS_POPULAR_HALF_LIFE_DAYS);
const channels: ChannelConfig[] = [];
const quotaOf = (id: string) => cfg.RECSYS_RECALL_QUOTAS[id] ?? 0;
const swing = SwingCandidateSource.load(cfg.RECSYS_MODEL_STORE, cfg.RECSYS_SWING_SEEDS);
channels.push({ source: swing, quota: quotaOf("swing"), timeoutMs: cfg.RECSYS_RECALL_CHANNEL_TIMEOUT_MS });
channels.push({
  source: popular,
  quota: quotaOf("popular"),
  timeoutMs: cfg.RECSYS_RECALL_CHANNEL_TIMEOUT_MS,
});
versions = { popular: popular.version, swing: swing.version };
registerVersions(rt.metrics, versions);
pipeline = new RecallPipeline(
  channels,
  () =>
    popular.fetch(undefined, cfg.RECSYS_RECALL_MAX_CANDIDATES).map((c) => ({ ...c, channels: ["popular"] })),
  rt.metrics,
);
rt.logger.info(
  { items: catalog.size, interactions: interactions.length, versions },
  "recall channels loaded",
);
rt.ready();

function registerVersions(metrics: Metrics, v: Record<string, string>): void {
  for (const [model, version] of Object.entries(v)) metrics.setModelVersion(`recall.${model}`, version);
}
