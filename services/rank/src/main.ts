import {
  createRuntime,
  decodeCandidates,
  encodeCandidates,
  loadCatalog,
  requireMaxLength,
  requireUser,
} from "@recsys/shared";
import { followItemsIntoCatalog } from "@recsys/shared/bus";
import { RankService } from "@recsys/shared/gen/recsys/rank/v1/rank_service_pb.js";
import { rankConfigSpec } from "./config.js";
import { GenreAffinityRankScorer } from "./scorer.js";

const rt = createRuntime("rank", rankConfigSpec);
const cfg = rt.config;
let scorer: GenreAffinityRankScorer | undefined;

rt.server.add(RankService, {
  async rank(req, ctx) {
    rt.requireReady();
    const user = requireUser(req.user);
    const candidates = decodeCandidates(req.candidates);
    requireMaxLength(candidates, "candidates", cfg.RECSYS_RANK_MAX_CANDIDATES);
    const stage = { requestId: ctx.requestId, user, scene: "", query: "", deadline: ctx.deadline };
    const scored = scorer!.score(stage, candidates);
    return { candidates: encodeCandidates(scored), modelVersion: scorer!.version, degradations: [] };
  },
});

await rt.start(cfg.RECSYS_RANK_ADDR);
const { catalog } = await loadCatalog(cfg.RECSYS_DATA_DIR);
scorer = new GenreAffinityRankScorer(catalog);
rt.metrics.setModelVersion("rank", scorer.version);
const itemFeed = await followItemsIntoCatalog({
  service: "rank",
  cfg,
  logger: rt.logger,
  metrics: rt.metrics,
  catalog,
});
rt.onShutdown(() => itemFeed.stop());
await itemFeed.waitCaughtUp(10_000);
rt.ready();
