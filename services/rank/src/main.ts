import {
  createRuntime,
  decodeCandidates,
  encodeCandidates,
  env,
  loadCatalog,
  requireMaxLength,
  requireUser,
} from "@recsys/shared";
import { RankService } from "@recsys/shared/gen/recsys/rank/v1/rank_service_pb.js";
import { GenreAffinityRankScorer } from "./scorer.js";

const rt = createRuntime("rank", {
  RECSYS_RANK_ADDR: env.str("127.0.0.1:50054"),
  RECSYS_RANK_MAX_CANDIDATES: env.int(2_000, 1, 100_000),
});
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
rt.ready();
