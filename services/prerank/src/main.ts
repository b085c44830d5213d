import {
  byScoreDesc,
  createRuntime,
  decodeCandidates,
  encodeCandidates,
  type LearnedScorer,
  OnnxPool,
  PRERANK_SPEC,
  requireIntInRange,
  requireMaxLength,
  requireUser,
  watchRankingModel,
} from "@recsys/shared";
import { stageItemTables } from "@recsys/shared/bus";
import { PrerankService } from "@recsys/shared/gen/recsys/prerank/v1/prerank_service_pb.js";
import { prerankConfigSpec } from "./config.js";
import { prerankScorer } from "./model.js";
import { keepWithReserves } from "./reserve.js";

const rt = createRuntime("prerank", prerankConfigSpec);
const cfg = rt.config;
let scorer: LearnedScorer | undefined;

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
    const scored = await scorer!.score(stage, candidates);
    scored.candidates.sort(byScoreDesc);
    const kept = keepWithReserves(scored.candidates, keep, cfg.RECSYS_PRERANK_RESERVED);
    return {
      candidates: encodeCandidates(kept),
      modelVersion: scored.version,
      degradations: scored.degradations,
    };
  },
});

await rt.start(cfg.RECSYS_PRERANK_ADDR);
// The catalogue and the content vectors, kept current from the items topic; shared with the other
// services of this process (co-located layout).
const { catalog, content } = await stageItemTables(rt, "prerank");
rt.metrics.setModelVersion("prerank.content", content.version);

// The prerank model, hot-swapped from the model store, on an ONNX worker thread; its item tower
// runs once per item and version (ItemVectorTable), its scoring per request.
const pool = new OnnxPool({
  threads: cfg.RECSYS_PRERANK_ONNX_THREADS,
  intraOpNumThreads: cfg.RECSYS_PRERANK_ONNX_INTRA_OP_THREADS,
  maxQueue: cfg.RECSYS_PRERANK_ONNX_MAX_QUEUE,
  // two graphs per version (item tower, scores), twice that for a hot swap
  maxSessions: 4,
});
rt.onShutdown(() => pool.close());
const watcher = await watchRankingModel({
  spec: PRERANK_SPEC,
  store: cfg.RECSYS_MODEL_STORE,
  pool,
  logger: rt.logger,
  metrics: rt.metrics,
  pollMs: cfg.RECSYS_MODEL_POLL_MS,
  catalog,
  content,
});
rt.onShutdown(() => watcher.stop());
scorer = prerankScorer({
  catalog,
  current: () => watcher.current()?.value,
  pool,
  metrics: rt.metrics,
  logger: rt.logger,
  deadlineMarginMs: cfg.RECSYS_PRERANK_DEADLINE_MARGIN_MS,
});
rt.metrics.setModelVersion("prerank", scorer.version);
watcher.onSwap(() => rt.metrics.setModelVersion("prerank", scorer!.version));
if (watcher.current()) {
  // A few full-size requests before SERVING, so the first real ones do not pay for a cold JIT.
  const ms = await scorer.warmUp([...catalog.items.keys()], 1000);
  rt.logger.info({ version: scorer.version, ms: Math.round(ms) }, "warm-up done");
}
rt.ready();
