import {
  createRuntime,
  decodeCandidates,
  encodeCandidates,
  invalidArgument,
  requireIntInRange,
  requireMaxLength,
  requireUser,
} from "@recsys/shared";
import { stageItemTables } from "@recsys/shared/bus";
import { RerankService } from "@recsys/shared/gen/recsys/rerank/v1/rerank_service_pb.js";
import { rerankConfigSpec } from "./config.js";
import { RerankPolicy } from "./policy.js";

const rt = createRuntime("rerank", rerankConfigSpec);
const cfg = rt.config;
let policy: RerankPolicy | undefined;

rt.server.add(RerankService, {
  async rerank(req, ctx) {
    rt.requireReady();
    const user = requireUser(req.user);
    const count = requireIntInRange(req.count, "count", 1, cfg.RECSYS_RERANK_MAX_COUNT);
    requireMaxLength(req.excludeItemIds, "exclude_item_ids", 10_000);
    for (const [task, w] of Object.entries(req.scoreWeights)) {
      if (!Number.isFinite(w)) throw invalidArgument(`score_weights[${task}]`, "must be finite");
    }
    const stage = { requestId: ctx.requestId, user, scene: "", query: req.query, deadline: ctx.deadline };
    const candidates = policy!.run(
      stage,
      decodeCandidates(req.candidates),
      count,
      req.excludeItemIds,
      req.scoreWeights,
    );
    return { candidates: encodeCandidates(candidates), policyVersion: policy!.version };
  },
});

await rt.start(cfg.RECSYS_RERANK_ADDR);
// The catalogue and the content vectors, kept current from the items topic; shared with the other
// services of this process (co-located layout).
const { catalog, content } = await stageItemTables(rt, "rerank");
rt.metrics.setModelVersion("rerank.content", content.version);
policy = new RerankPolicy(
  catalog,
  {
    defaultWeights: cfg.RECSYS_RERANK_WEIGHTS,
    mmrLambda: cfg.RECSYS_RERANK_MMR_LAMBDA,
    mmrPool: cfg.RECSYS_RERANK_MMR_POOL,
    genreCapFraction: cfg.RECSYS_RERANK_GENRE_CAP,
    freshSlots: cfg.RECSYS_RERANK_FRESH_SLOTS,
  },
  rt.metrics,
  content,
);
rt.metrics.setModelVersion("rerank", policy.version);
rt.ready();
