import { type AdmissionOptions, createClient, createRuntime, decayedPopularity } from "@recsys/shared";
import { openItemTables } from "@recsys/shared/bus";
import { PrerankService } from "@recsys/shared/gen/recsys/prerank/v1/prerank_service_pb.js";
import { RankService } from "@recsys/shared/gen/recsys/rank/v1/rank_service_pb.js";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import {
  FeedbackService,
  RecommendService,
} from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { RerankService } from "@recsys/shared/gen/recsys/rerank/v1/rerank_service_pb.js";
import { gatewayConfigSpec } from "./config.js";
import { handleReport } from "./feedback.js";
import { applyOverrides, assignVariant, defaultExperiment, homeFeed, loadFunnelFile } from "./funnel.js";
import { type Online, openOnline } from "./online.js";
import { FunnelRunner } from "./recommend.js";
import { validateRecommend } from "./validate.js";

const rt = createRuntime("gateway", gatewayConfigSpec, {
  admission: (c): Record<string, AdmissionOptions> =>
    c.RECSYS_ADMISSION
      ? {
          Recommend: { targetMs: c.RECSYS_ADMISSION_RECOMMEND_TARGET_MS },
          Report: { targetMs: c.RECSYS_ADMISSION_REPORT_TARGET_MS },
        }
      : {},
});
/** Degradations that mean a stage ran out of time: the answer was cut short for lack of capacity. */
const CAPACITY_DEGRADATION = /timeout|_fallback$|channel_failed/;
const cfg = rt.config;
const funnelFile = loadFunnelFile(cfg.RECSYS_FUNNEL_CONFIG);
const baseFunnel = applyOverrides(homeFeed, funnelFile.funnel);
const experiment = funnelFile.experiment ?? defaultExperiment;
const clients = {
  recall: createClient(RecallService, cfg.RECSYS_RECALL_TARGET),
  prerank: createClient(PrerankService, cfg.RECSYS_PRERANK_TARGET),
  rank: createClient(RankService, cfg.RECSYS_RANK_TARGET),
  rerank: createClient(RerankService, cfg.RECSYS_RERANK_TARGET),
};
let runner: FunnelRunner | undefined;
let online: Online | undefined;

rt.server.add(RecommendService, {
  async recommend(req, ctx) {
    rt.requireReady();
    const { count } = validateRecommend(req, { maxCount: cfg.RECSYS_MAX_COUNT });
    const variant = assignVariant(experiment, req.userId);
    const funnel = applyOverrides(baseFunnel, variant.overrides);
    const out = await runner!.run(funnel, {
      requestId: ctx.requestId,
      userId: req.userId,
      count,
      scene: req.scene || funnel.id,
      query: req.query,
      excludeItemIds: req.excludeItemIds,
      callerDeadline: ctx.deadline,
    });
    // a stage skipped by its open circuit breaker answers fast: that is an outage, not load
    if (
      out.degradations.some((d) => CAPACITY_DEGRADATION.test(d)) &&
      !out.degradations.some((d) => d.startsWith("circuit_open:"))
    )
      ctx.overloaded();
    const response = {
      requestId: ctx.requestId,
      items: out.items,
      degradations: out.degradations,
      modelVersions: out.modelVersions,
      experimentVariant: `${experiment.name}/${variant.name}`,
    };
    // Side effect after the response is computed: a push into a bounded buffer.
    online!.impressions?.record({
      requestId: ctx.requestId,
      userId: req.userId,
      scene: req.scene || funnel.id,
      timestampMs: Date.now(),
      items: out.items.map((i) => ({
        itemId: i.itemId ?? "",
        score: i.score ?? 0,
        channels: i.channels ?? [],
      })),
      experimentVariant: response.experimentVariant,
      modelVersions: out.modelVersions,
      degradations: out.degradations,
    });
    return response;
  },
});
rt.server.add(FeedbackService, {
  async report(req) {
    rt.requireReady();
    return handleReport(req, online!.feedback);
  },
});
rt.onShutdown(async () => {
  for (const c of Object.values(clients)) c.close();
  await online?.close();
});

await rt.start(cfg.RECSYS_GATEWAY_ADDR);
// The dataset (popular fallback, user histories): shared with the stages this process hosts (co-located layout).
const tables = await openItemTables({
  service: "gateway",
  cfg,
  logger: rt.logger,
  metrics: rt.metrics,
  content: false,
  follow: false,
});
rt.onShutdown(() => tables.release());
const { catalog, interactions } = tables;
online = await openOnline(rt, interactions);
const store = online.store;
const popular = decayedPopularity(interactions, catalog.latestMs, cfg.RECSYS_POPULAR_HALF_LIFE_DAYS);
runner = new FunnelRunner(
  clients,
  store,
  { topItemIds: (n) => popular.slice(0, n).map((p) => p.itemId) },
  cfg.RECSYS_HISTORY_LENGTH,
  rt.metrics,
  rt.logger,
  { failures: cfg.RECSYS_BREAKER_FAILURES, cooldownMs: cfg.RECSYS_BREAKER_COOLDOWN_MS },
);
await warmUp(cfg.RECSYS_WARMUP_REQUESTS, [...new Set(interactions.map((r) => r.userId))]);
rt.logger.info(
  {
    users: await store.size().catch(() => -1),
    ...online.describe,
    items: catalog.size,
    experiment: experiment.name,
    address: cfg.RECSYS_GATEWAY_ADDR,
  },
  "gateway loaded",
);
rt.ready();

/**
 * Opens the stage channels and warms the JIT on every hop with real requests
 * before health turns SERVING, so the first user requests do not pay for it.
 * Stages that are down only make the warm-up degrade; it never blocks start-up.
 */
async function warmUp(requests: number, userIds: string[]): Promise<void> {
  if (requests === 0) return;
  const started = performance.now();
  await Promise.allSettled(Object.values(clients).map((c) => c.waitForReady(2_000)));
  let degraded = 0;
  for (let i = 0; i < requests; i++) {
    const userId = userIds[(i * 7919) % Math.max(1, userIds.length)] ?? `warmup-${i}`;
    const out = await runner!.run(baseFunnel, {
      requestId: `warmup-${i}`,
      userId,
      count: 20,
      scene: "warmup",
      query: "",
      excludeItemIds: [],
      callerDeadline: Date.now() + 2_000,
      warmUp: true,
    });
    if (out.degradations.some((d) => d !== "unknown_user")) degraded++;
  }
  rt.logger.info({ requests, degraded, ms: Math.round(performance.now() - started) }, "warm-up done");
}
