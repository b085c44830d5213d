import {
  byScoreDesc,
  createRuntime,
  decodeCandidates,
  encodeCandidates,
  loadCatalog,
  requireIntInRange,
  requireMaxLength,
  requireUser,
} from "@recsys/shared";
import { followItemsIntoCatalog } from "@recsys/shared/bus";
import { PrerankService } from "@recsys/shared/gen/recsys/prerank/v1/prerank_service_pb.js";
import { prerankConfigSpec } from "./config.js";
import { keepWithReserves } from "./reserve.js";
import { GenreAffinityPrerankScorer } from "./scorer.js";

const rt = createRuntime("prerank", prerankConfigSpec);
const cfg = rt.config;
let scorer: GenreAffinityPrerankScorer | undefined;

rt.server.add(PrerankService, {
  async prerank(req, ctx) {
    rt.requireReady();
    const user = requireUser(req.user);
    const candidates = decodeCandidates(req.candidates);
    requireMaxLength(candidates, "candidates", cfg.RECSYS_PRERANK_MAX_CANDIDATES);
    const keep =
      req.keep === 0
        ? cfg.RECSYS_PRERANK_KEEP
        : requireIntInRange(req.keep, "keep", 1, cfg.RECSYS_PRERANK_MAX_CANDIDATES);
    const stage = { requestId: ctx.requestId, user, scene: "", query: "", deadline: ctx.deadline };
    const scored = scorer!.score(stage, candidates);
    scored.sort(byScoreDesc);
    const kept = keepWithReserves(scored, keep, cfg.RECSYS_PRERANK_RESERVED);
    return { candidates: encodeCandidates(kept), modelVersion: scorer!.version };
  },
});

await rt.start(cfg.RECSYS_PRERANK_ADDR);
const { catalog } = await loadCatalog(cfg.RECSYS_DATA_DIR);
scorer = new GenreAffinityPrerankScorer(catalog);
rt.metrics.setModelVersion("prerank", scorer.version);
const itemFeed = await followItemsIntoCatalog({
  service: "prerank",
  cfg,
  logger: rt.logger,
  metrics: rt.metrics,
  catalog,
});
rt.onShutdown(() => itemFeed.stop());
await itemFeed.waitCaughtUp(10_000);
rt.ready();
