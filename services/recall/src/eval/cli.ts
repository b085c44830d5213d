/**
 * npm run eval — offline evaluation of every recall channel and of the merged
 * recall, through the serving code (the same channel classes and merge
 * pipeline the recall service runs), on the per-user temporal split: each
 * user's last event is the target, everything before it is history.
 * Full-corpus ranking, no sampled negatives; history items are excluded from
 * the ranking (as the serving filters do).
 *
 *   node services/recall/dist/eval/cli.js [--data DIR] [--store DIR] [--models kuaiformer,sasrec]
 *     [--generative generative] [--out docs/evaluation.md]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import {
  createLogger,
  EventType,
  type HistoryRow,
  ItemCatalog,
  loadDataset,
  ModelWatcher,
  OnnxPool,
  perUserTemporalSplit,
  type RankedResult,
  retrievalMetrics,
  type StageContext,
  writeSection,
} from "@recsys/shared";
import { GenerativeCandidateSource } from "../channels/generative.js";
import { PopularCandidateSource } from "../channels/popular.js";
import { SequenceCandidateSource } from "../channels/sequence.js";
import { SwingCandidateSource } from "../channels/swing.js";
import { type GenerativeModel, loadGenerativeModel } from "../models/generative-model.js";
import {
  bruteForceTopK,
  encodeHistories,
  loadSequenceModel,
  type SequenceModel,
} from "../models/sequence-model.js";
import { RecallPipeline } from "../recall.js";
import { buildSwing, DEFAULT_SWING_OPTIONS } from "../swing/build.js";
import { hrChartSvg } from "./metrics.js";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "data/ml-latest-small" },
    store: { type: "string", default: "var/models" },
    models: { type: "string", default: "kuaiformer,sasrec" },
    /** The generative model's store name ("" = none). */
    generative: { type: "string", default: "generative" },
    out: { type: "string", default: "docs/evaluation.md" },
    quotas: { type: "string", default: "kuaiformer=500,swing=300,popular=200" },
    "hnsw-users": { type: "string", default: "200" },
    command: { type: "string", default: "npm run eval" },
  },
});

const HR_AT = [10, 50, 100, 500];
const NDCG_AT = [10, 100];
const MAX_K = 500;
const say = (m: string) => process.stderr.write(`[eval] ${m}\n`);
const logger = createLogger("eval", "warn");

const started = performance.now();
const { items, interactions } = await loadDataset(values.data);
const { train, test } = perUserTemporalSplit(interactions, 1, 1);
const catalog = new ItemCatalog(items, train);
const trainItems = new Set(train.map((r) => r.itemId));
const coldTargets = test.filter((t) => !trainItems.has(t.targets[0]!.itemId)).length;
say(
  `${test.length} test users (${coldTargets} with a target item never seen in training), ${train.length} training events`,
);

const toRows = (rows: typeof train): HistoryRow[] =>
  rows.map((r) => ({
    itemId: r.itemId,
    timestampMs: r.timestampMs,
    type: EventType.RATING,
    value: r.rating,
  }));
const contexts = test.map((t) => ({
  target: t.targets[0]!.itemId,
  ctx: {
    requestId: `eval-${t.userId}`,
    scene: "eval",
    query: "",
    deadline: Number.POSITIVE_INFINITY,
    user: {
      userId: t.userId,
      known: true,
      blockedItemIds: [],
      earlierSeenItemIds: [],
      history: toRows(t.history),
    },
  } satisfies StageContext,
}));

// Channels, built from training data only.
const nowMs = Math.max(...train.map((r) => r.timestampMs));
const popular = new PopularCandidateSource(train, nowMs, 60);
say("building Swing on the training split");
const swing = new SwingCandidateSource(buildSwing(train, DEFAULT_SWING_OPTIONS), "eval-train-split", 30);
const pool = new OnnxPool({ threads: 1, maxSessions: 8 }); // sasrec, kuaiformer, generative's two graphs
const sequence: Array<{
  source: SequenceCandidateSource;
  model: SequenceModel;
  version: string;
  manifest: Record<string, unknown>;
}> = [];
for (const name of values.models.split(",").filter(Boolean)) {
  const watcher = new ModelWatcher<SequenceModel>({
    store: values.store,
    model: name,
    logger,
    load: (dir, manifest) => loadSequenceModel(name, dir, manifest, pool),
  });
  await watcher.check();
  const loaded = watcher.current();
  if (!loaded) {
    say(`no loadable ${name} version in ${values.store}: skipped`);
    continue;
  }
  const split = String((loaded.manifest.data as { split?: string } | undefined)?.split ?? "");
  if (!/last-1/.test(split))
    say(
      `WARNING: ${name} ${loaded.version} was trained on split "${split}", not the per-user last-1 holdout`,
    );
  sequence.push({
    source: new SequenceCandidateSource(name, watcher, pool),
    model: loaded.value,
    version: loaded.version,
    manifest: loaded.manifest,
  });
}

let generative: { source: GenerativeCandidateSource; version: string; profile: string } | undefined;
if (values.generative) {
  const watcher = new ModelWatcher<GenerativeModel>({
    store: values.store,
    model: values.generative,
    logger,
    load: (dir, manifest) => loadGenerativeModel(dir, manifest, pool),
  });
  await watcher.check();
  const loaded = watcher.current();
  if (loaded) {
    // as many beams as the channels here are asked items
    const source = new GenerativeCandidateSource(watcher, pool, undefined, MAX_K);
    const profile = String((loaded.manifest.config as { profile?: string } | undefined)?.profile ?? "?");
    generative = { source, version: loaded.version, profile };
  } else say(`no loadable ${values.generative} version in ${values.store}: skipped`);
}

const channels = [
  ...sequence.map((s) => s.source),
  ...(generative ? [generative.source] : []),
  swing,
  popular,
];
const rows: Array<{ name: string; metrics: ReturnType<typeof retrievalMetrics>; ms: number }> = [];
for (const ch of channels) {
  const t0 = performance.now();
  const results: RankedResult[] = [];
  for (const { ctx, target } of contexts) {
    const seen = new Set(ctx.user.history.map((e) => e.itemId));
    const out = (await ch.fetch(ctx, MAX_K + seen.size)).filter((c) => !seen.has(c.itemId)).slice(0, MAX_K);
    results.push({ items: out.map((c) => c.itemId), target });
  }
  const ms = performance.now() - t0;
  rows.push({ name: ch.id, metrics: retrievalMetrics(results, HR_AT, NDCG_AT, catalog.size), ms });
  say(
    `${ch.id}: HR@100 ${rows.at(-1)!.metrics.hr[100]!.toFixed(4)} (${(ms / contexts.length).toFixed(1)} ms/user)`,
  );
}

// Merged recall through the serving merge pipeline, with the serving quotas.
const quotas = Object.fromEntries(
  values.quotas.split(",").map((p) => [p.split("=")[0]!, Number(p.split("=")[1])]),
);
const pipeline = new RecallPipeline(
  channels
    .filter((c) => quotas[c.id] !== undefined)
    .map((source) => ({ source, quota: quotas[source.id]!, timeoutMs: 10_000 })),
  () => [],
);
const mergedResults: RankedResult[] = [];
let mergedSize = 0;
for (const { ctx, target } of contexts) {
  const out = await pipeline.run({ ...ctx, excludeItemIds: [], maxCandidates: 2_000, quotaOverrides: {} });
  mergedSize += out.candidates.length;
  mergedResults.push({ items: out.candidates.map((c) => c.itemId), target });
}
const mergedName = `merged (${values.quotas})`;
rows.push({
  name: mergedName,
  metrics: retrievalMetrics(mergedResults, [...HR_AT, 2_000], NDCG_AT, catalog.size),
  ms: 0,
});

// HNSW recall@quota against brute force, per interest, quota 250.
const hnswRows: string[] = [];
for (const s of sequence) {
  const users = contexts.slice(0, Number(values["hnsw-users"]));
  let hit = 0;
  let total = 0;
  for (const { ctx } of users) {
    const { feeds } = encodeHistories(s.model, [ctx.user.history]);
    const res = await pool.run(s.model.modelPath, feeds);
    const interests = new Float32Array(res.outputs.interests!.data);
    const exclude = new Set(
      ctx.user.history.map((e) => s.model.vocab.get(e.itemId)).filter((x): x is number => x !== undefined),
    );
    for (let i = 0; i < s.model.numInterests; i++) {
      const q = interests.subarray(i * s.model.dim, (i + 1) * s.model.dim);
      const exact = bruteForceTopK(s.model, q, 250, exclude);
      const approx = s.model.index.searchKnn(
        Array.from(q),
        Math.min(250, exact.length),
        (l: number) => !exclude.has(l),
      ).neighbors;
      const approxSet = new Set(approx);
      hit += exact.filter((x) => approxSet.has(x)).length;
      total += exact.length;
    }
  }
  hnswRows.push(
    `| ${s.source.id} | ${users.length} users × ${s.model.numInterests} interests | ${(hit / Math.max(1, total)).toFixed(4)} |`,
  );
}
await pool.close();

// Report.
const fmt = (v: number | undefined) => (v === undefined ? "—" : v.toFixed(4));
const table = [
  "| channel | HR@10 | HR@50 | HR@100 | HR@500 | NDCG@10 | NDCG@100 | coverage@100 |",
  "|---|---|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${r.name} | ${fmt(r.metrics.hr[10])} | ${fmt(r.metrics.hr[50])} | ${fmt(r.metrics.hr[100])} | ${fmt(r.metrics.hr[500])} | ${fmt(r.metrics.ndcg[10])} | ${fmt(r.metrics.ndcg[100])} | ${fmt(r.metrics.coverage)} |`,
  ),
].join("\n");
const chartPath = join(dirname(values.out), "img", "recall-hr.svg");
mkdirSync(dirname(chartPath), { recursive: true });
writeFileSync(
  chartPath,
  hrChartSvg(
    rows.map((r) => ({ name: r.name.startsWith("merged") ? "merged" : r.name, hr: r.metrics.hr })),
    HR_AT,
  ),
);
const byName = Object.fromEntries(rows.map((r) => [r.name, r.metrics.hr[100] ?? 0]));
const ratio = (a: string, b: string) => (byName[a] && byName[b] ? (byName[a]! / byName[b]!).toFixed(2) : "—");
const versions = [
  ...sequence.map(
    (s) =>
      `${s.source.id} ${s.version} (profile ${String((s.manifest.config as { profile?: string } | undefined)?.profile ?? "?")})`,
  ),
  ...(generative ? [`generative ${generative.version} (profile ${generative.profile}, beam ${MAX_K})`] : []),
].join(", ");
const report = `## Recall (${new Date().toISOString().slice(0, 10)})

Command: \`${values.command}\` (data \`${values.data}\`, store \`${values.store}\`). Machine: this repository's 2-core reference machine.
Split: per-user temporal — each user's last event (ties broken by item id) is the target, everything before is history.
${test.length} test users (${coldTargets} of them have a target item that never occurs in training, which no ID-based channel can retrieve).
Full-corpus ranking over ${catalog.size} items; the user's history items are excluded, as the serving filters do; no sampled negatives.
Each channel is asked for ${MAX_K} items through its serving \`fetch\`; the merged row runs the serving merge pipeline with the serving quotas
(HR@2000 column of the merged set = hit rate of the whole merged candidate set, mean size ${(mergedSize / Math.max(1, contexts.length)).toFixed(0)}).
Popular and Swing are built from the training events only. Models: ${versions || "none"}.

${table}

Merged set recall (all candidates): ${fmt(rows.at(-1)!.metrics.hr[2000])}.

Ratios at HR@100: kuaiformer / sasrec = ${ratio("kuaiformer", "sasrec")}, generative / sasrec = ${ratio("generative", "sasrec")}, kuaiformer / swing = ${ratio("kuaiformer", "swing")}, kuaiformer / popular = ${ratio("kuaiformer", "popular")}.

![HR@K per channel](${relative(dirname(values.out), chartPath)})

### HNSW index quality

Recall of the HNSW search (M=16, efConstruction=200, ef=200) against exact inner-product search, top-250 per interest vector, history excluded:

| model | queries | recall@250 |
|---|---|---|
${hnswRows.join("\n")}

Evaluation took ${((performance.now() - started) / 1000).toFixed(0)} s.
`;
writeSection(values.out, "recall", report, values.command);
say(`wrote ${values.out} and ${chartPath}`);
