import {
  createRuntime,
  decodeCandidates,
  EM3_SPEC,
  encodeCandidates,
  type LearnedScorer,
  OnnxPool,
  requireMaxLength,
  requireUser,
  watchRankingModel,
} from "@recsys/shared";
import { stageItemTables } from "@recsys/shared/bus";
import { RankService } from "@recsys/shared/gen/recsys/rank/v1/rank_service_pb.js";
import { rankConfigSpec } from "./config.js";
import { em3Scorer } from "./em3.js";

const rt = createRuntime("rank", rankConfigSpec);
const cfg = rt.config;
let scorer: LearnedScorer | undefined;

rt.server.add(RankService, {
  async rank(req, ctx) {
    rt.requireReady();
    const user = requireUser(req.user);
    const candidates = decodeCandidates(req.candidates);
    requireMaxLength(candidates, "candidates", cfg.RECSYS_RANK_MAX_CANDIDATES);
    const stage = { requestId: ctx.requestId, user, scene: "", query: "", deadline: ctx.deadline };
    const scored = await scorer!.score(stage, candidates);
    return {
      candidates: encodeCandidates(scored.candidates),
      modelVersion: scored.version,
      degradations: scored.degradations,
    };
  },
});

await rt.start(cfg.RECSYS_RANK_ADDR);
// The catalogue and the content vectors, kept current from the items topic; shared with the other
// services of this process (co-located layout).
const { catalog, content } = await stageItemTables(rt, "rank");
rt.metrics.setModelVersion("rank.content", content.version);

// The em3 model, hot-swapped from the model store, on ONNX worker threads.
const pool = new OnnxPool({
  threads: cfg.RECSYS_RANK_ONNX_THREADS,
  intraOpNumThreads: cfg.RECSYS_RANK_ONNX_INTRA_OP_THREADS,
  executionProvider: cfg.RECSYS_RANK_EXECUTION_PROVIDER,
  maxQueue: cfg.RECSYS_RANK_ONNX_MAX_QUEUE,
  // two graphs per version (item tower, scores), twice that for a hot swap
  maxSessions: 4,
});
rt.onShutdown(() => pool.close());
const watcher = await watchRankingModel({
  spec: EM3_SPEC,
  store: cfg.RECSYS_MODEL_STORE,
  pool,
  logger: rt.logger,
  metrics: rt.metrics,
  pollMs: cfg.RECSYS_MODEL_POLL_MS,
  catalog,
  content,
});
rt.onShutdown(() => watcher.stop());
scorer = em3Scorer({
  catalog,
  current: () => watcher.current()?.value,
  pool,
  metrics: rt.metrics,
  logger: rt.logger,
  deadlineMarginMs: cfg.RECSYS_RANK_DEADLINE_MARGIN_MS,
});
rt.metrics.setModelVersion("rank", scorer.version);
watcher.onSwap(() => rt.metrics.setModelVersion("rank", scorer!.version));
if (watcher.current()) {
  // A few full-size requests before SERVING, so the first real ones do not pay for a cold JIT.
  const ms = await scorer.warmUp([...catalog.items.keys()], 300);
  rt.logger.info({ version: scorer.version, ms: Math.round(ms) }, "warm-up done");
}
rt.ready();
