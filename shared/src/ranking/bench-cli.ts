/**
 * Ranking-model latency benchmark (a command, not a test): one request
 * (one user, `--candidates` items) at a time through LearnedScorer and
 * OnnxPool exactly as the prerank and rank services run it: tensors built
 * on the calling thread, one ONNX run on a worker thread, outputs checked.
 * Reports p50/p99 of the whole call and of its parts. Prints Markdown.
 *   node shared/dist/ranking/bench-cli.js --model em3 --candidates 300
 *   node shared/dist/ranking/bench-cli.js --model prerank --candidates 1000
 *     [--store var/models] [--data data/ml-latest-small] [--iterations 500] [--warmup 50]
 *     [--threads 1] [--intra-op 1] [--provider cpu]
 */
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { loadCatalog } from "../catalog.js";
import { groupByUser } from "../data/dataset.js";
import { ContentTable } from "../encoder/content-table.js";
import { newCandidate } from "../funnel/types.js";
import { EventType } from "../gen/recsys/common/v1/common_pb.js";
import { BufferPool, OnnxPool } from "../onnx/pool.js";
import { currentVersion, readVerifiedManifest, versionDir } from "../store/modelstore.js";
import { buildRankingFeeds } from "./features.js";
import { EM3_SPEC, loadRankingModel, PRERANK_SPEC, requestVectors } from "./model.js";
import { LearnedScorer } from "./scorer.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "em3" },
    candidates: { type: "string", default: "300" },
    store: { type: "string", default: process.env.RECSYS_MODEL_STORE ?? "var/models" },
    data: { type: "string", default: process.env.RECSYS_DATA_DIR ?? "data/ml-latest-small" },
    iterations: { type: "string", default: "500" },
    warmup: { type: "string", default: "50" },
    threads: { type: "string", default: "1" },
    "intra-op": { type: "string", default: "1" },
    provider: { type: "string", default: "cpu" },
  },
});
const spec = values.model === "prerank" ? PRERANK_SPEC : EM3_SPEC;
const n = Number(values.candidates);
const iterations = Number(values.iterations);
const warmup = Number(values.warmup);

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${percentile(s, 50).toFixed(2)} | ${percentile(s, 99).toFixed(2)}`;
};

const version = currentVersion(values.store, spec.model);
if (!version) throw new Error(`no ${spec.model} version in ${values.store}`);
const { catalog, interactions } = await loadCatalog(values.data);
const content = ContentTable.load(values.store);
const pool = new OnnxPool({
  threads: Number(values.threads),
  intraOpNumThreads: Number(values["intra-op"]),
  executionProvider: values.provider === "cuda" ? "cuda" : "cpu",
});
try {
  const model = await loadRankingModel(
    spec,
    versionDir(values.store, spec.model, version),
    readVerifiedManifest(values.store, spec.model, version),
    pool,
    { catalog, content },
  );
  const scorer = new LearnedScorer({
    stage: spec.model,
    spec,
    current: () => model,
    pool,
    fallback: { id: "none", version: "none", score: () => [] },
    apply: (outputs, cs) => {
      const first = outputs[spec.outputs[0]!]!;
      for (let i = 0; i < cs.length; i++) cs[i]!.score = first[i]!;
    },
  });
  // Real users (their last 200 ratings) and random catalogue items as candidates.
  const users = [...groupByUser(interactions).entries()].slice(0, 50).map(([userId, rows]) => ({
    userId,
    known: true,
    blockedItemIds: [],
    earlierSeenItemIds: [],
    history: rows.slice(-200).map((r) => ({
      itemId: r.itemId,
      timestampMs: r.timestampMs,
      type: EventType.RATING,
      value: r.rating,
    })),
  }));
  const ids = [...catalog.items.keys()];
  const request = (i: number) => {
    const user = users[i % users.length]!;
    const start = (i * 7919) % Math.max(1, ids.length - n);
    const candidates = ids.slice(start, start + n).map((id) => newCandidate(id));
    return { ctx: { requestId: `bench-${i}`, user, scene: "", query: "", deadline: Infinity }, candidates };
  };
  for (let i = 0; i < warmup; i++) {
    const { ctx, candidates } = request(i);
    await scorer.score(ctx, candidates);
  }
  // The parts are timed as the scorer runs them: content inputs in reused buffers.
  const buffers = new BufferPool();
  const total: number[] = [];
  const build: number[] = [];
  const inference: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const { ctx, candidates } = request(warmup + i);
    let t = performance.now();
    const vectors = await requestVectors(
      spec,
      model.itemVectors,
      model.maxHistLen,
      ctx.user,
      candidates.map((c) => c.itemId),
    );
    const { feeds } = buildRankingFeeds(spec, model, model.userVocab, model.features, ctx.user, candidates, {
      buffers,
      ...vectors,
    });
    build.push(performance.now() - t);
    const run = await pool.run(model.modelPath, feeds);
    buffers.release(run.inputs);
    inference.push(run.inferenceMs);
    t = performance.now();
    const out = await scorer.score(ctx, candidates);
    total.push(performance.now() - t);
    if (out.degradations.length > 0) throw new Error(`degraded: ${out.degradations.join(",")}`);
  }
  const load = loadavg().map((l) => l.toFixed(2));
  process.stdout.write(
    [
      `### ${spec.model} ${version}: ${n} candidates per request`,
      "",
      `${iterations} requests one at a time after ${warmup} warm-up; ${values.threads} worker thread(s), ${values["intra-op"]} intra-op thread(s), provider ${model.provider}; ` +
        `${availableParallelism()} CPUs (${cpus()[0]?.model ?? "?"}), load average ${load.join(" ")} at the end.`,
      "",
      "| part | p50 ms | p99 ms |",
      "|---|---|---|",
      `| LearnedScorer.score (whole call) | ${summary(total)} |`,
      `| tensors built (calling thread) | ${summary(build)} |`,
      `| ONNX session.run (worker) | ${summary(inference)} |`,
      "",
    ].join("\n"),
  );
} finally {
  await pool.close();
}
