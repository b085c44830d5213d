/**
 * What the whole funnel recommends, offline, and what each stage adds: the
 * held-out last event of every user against the `count` items Recommend
 * returns, for the funnel cut after each stage, the whole funnel with and
 * without diversity, each recall channel alone, and an item-CF reference
 * computed here on the same split.
 *
 *   node services/gateway/dist/eval/funnel-cli.js [--config ROW]... [--count 20]
 *     [--data data/ml-latest-small] [--store var/models] [--users 0] [--out docs/evaluation.md] [--json]
 *
 * ROW is a built-in row or NAME=FILE.json: the `funnel` overrides of a
 * RECSYS_FUNNEL_CONFIG file, and optionally `rerankEnv`, rerank settings for
 * the row (e.g. {"RECSYS_RERANK_MMR_LAMBDA": "0.85"}: diversity strength).
 * Built-in rows (all of them by default):
 *   recall                 the merged candidates in recall's order (funnel cut after recall)
 *   recall+prerank         cut after prerank (prerank's order)
 *   recall+prerank+rank    cut after rank (rank's order)
 *   default-no-diversity   the whole funnel with MMR, the genre cap and fresh slots off
 *   default                the whole funnel as shipped
 *   channel:ID             one recall channel alone (the others' quotas 0), in its order
 *   item-cf                item-based CF (cosine on the binary user x item matrix, summed
 *                          over the history; the trainer's baseline), computed in this process
 * A cut keeps the seen and excluded filters, as serving does.
 *
 * How: each user's last event is held out (the models were trained without it;
 * docs/models.md). The data directory the services read is rewritten without
 * those events, and Swing is rebuilt from it into a scratch model store that
 * links the other models, so no serving table knows a target. For each funnel
 * row a co-located funnel is started on it (generous budgets: this measures
 * quality, not latency) and every test user asks for `count` items, over gRPC.
 * The quality columns are deterministic for the same models and configuration.
 * `--json` prints one JSON object per row (keys name, hr@10, hr@20, ndcg@10,
 * ndcg@20, coverage, diversity@10, cold_share, new_share, ...).
 */
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LocalStack, relaxedBudgetEnv } from "@recsys/local";
import {
  createClient,
  type Interaction,
  loadInteractions,
  loadItems,
  perUserTemporalSplit,
  retrievalMetrics,
  writeSection,
} from "@recsys/shared";
import { RecommendService } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { applyOverrides, homeFeed } from "../funnel.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const { values } = parseArgs({
  options: {
    data: { type: "string", default: "data/ml-latest-small" },
    store: { type: "string", default: "var/models" },
    config: { type: "string", multiple: true },
    count: { type: "string", default: "20" },
    users: { type: "string", default: "0" },
    out: { type: "string" },
    json: { type: "boolean", default: false },
    "base-port": { type: "string", default: "57351" },
    command: { type: "string", default: "npm run eval:funnel" },
  },
});
const count = Number(values.count);
if (!Number.isInteger(count) || count < 10)
  throw new Error(`--count must be an integer >= 10, got ${values.count}`);
const say = (m: string) => process.stderr.write(`[eval:funnel] ${m}\n`);

/** An item with at most this many training events counts as cold (0: new). */
const COLD_MAX_EVENTS = 5;

/** No diversity: MMR relevance only, no genre cap, no fresh slots (rerank's own settings). */
const NO_DIVERSITY_ENV = {
  RECSYS_RERANK_MMR_LAMBDA: "1",
  RECSYS_RERANK_GENRE_CAP: "1",
  RECSYS_RERANK_FRESH_SLOTS: "0",
};

interface Row {
  readonly name: string;
  /** What it is, for the table. */
  readonly describe: string;
  /** Funnel overrides (a funnel row), or undefined for the in-process item-CF reference. */
  readonly overrides?: Record<string, unknown>;
  readonly rerankEnv?: Record<string, string>;
}

const channels = Object.keys(homeFeed.recall.channels).filter((c) => c !== "query");
const quotas = (f: typeof homeFeed) =>
  Object.entries(f.recall.channels)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

function builtInRow(name: string): Row | undefined {
  const whole = `${quotas(homeFeed)}; prerank keep ${homeFeed.prerank.keep}`;
  switch (name) {
    case "recall":
      return { name, describe: `recall only (${quotas(homeFeed)})`, overrides: { stopAfter: "recall" } };
    case "recall+prerank":
      return {
        name,
        describe: `cut after prerank (keep ${homeFeed.prerank.keep})`,
        overrides: { stopAfter: "prerank" },
      };
    case "recall+prerank+rank":
      return { name, describe: "cut after rank", overrides: { stopAfter: "rank" } };
    case "default":
      return { name, describe: whole, overrides: {} };
    case "default-no-diversity":
      return {
        name,
        describe: "whole funnel, no MMR / genre cap / fresh slots",
        overrides: {},
        rerankEnv: NO_DIVERSITY_ENV,
      };
    case "item-cf":
      return { name, describe: "item-based CF reference (in this process)" };
  }
  if (name.startsWith("channel:")) {
    const id = name.slice("channel:".length);
    const quota = homeFeed.recall.channels[id];
    if (!quota)
      throw new Error(`--config ${name}: unknown channel or quota 0 (known: ${channels.join(", ")})`);
    const only = Object.fromEntries(
      Object.keys(homeFeed.recall.channels).map((c) => [c, c === id ? quota : 0]),
    );
    return {
      name,
      describe: `${id} ${quota} alone`,
      overrides: { stopAfter: "recall", recall: { channels: only } },
    };
  }
  return undefined;
}

const DEFAULT_ROWS = [
  "recall",
  "recall+prerank",
  "recall+prerank+rank",
  "default-no-diversity",
  "default",
  ...channels.map((c) => `channel:${c}`),
  "item-cf",
];
const rows: Row[] = (values.config ?? DEFAULT_ROWS).map((spec) => {
  const builtIn = builtInRow(spec);
  if (builtIn) return builtIn;
  const eq = spec.indexOf("=");
  if (eq <= 0)
    throw new Error(
      `--config ${spec}: expected a built-in row (${DEFAULT_ROWS.join(", ")}) or NAME=FILE.json`,
    );
  const parsed = JSON.parse(readFileSync(spec.slice(eq + 1), "utf8")) as {
    funnel?: Record<string, unknown>;
    rerankEnv?: Record<string, string>;
  };
  const overrides = parsed.funnel ?? {};
  const f = applyOverrides(homeFeed, overrides as never);
  const weights = Object.entries(f.rerank.weights)
    .map(([k, v]) => `${k} ${v}`)
    .join(" + ");
  const env = Object.entries(parsed.rerankEnv ?? {})
    .map(([k, v]) => `${k.replace("RECSYS_RERANK_", "").toLowerCase()} ${v}`)
    .join(", ");
  return {
    name: spec.slice(0, eq),
    describe: `${quotas(f)}; prerank keep ${f.prerank.keep}; fusion ${weights}${env ? `; ${env}` : ""}`,
    overrides,
    ...(parsed.rerankEnv ? { rerankEnv: parsed.rerankEnv } : {}),
  };
});

// Held-out split, and a data directory without the targets.
const dataDir = resolve(values.data);
const interactions = await loadInteractions(dataDir);
const items = await loadItems(dataDir);
const genresOf = new Map(items.map((i) => [i.itemId, new Set(i.genres)]));
const { train, test } = perUserTemporalSplit(interactions, 1);
const users = Number(values.users) > 0 ? test.slice(0, Number(values.users)) : test;
const trainCount = new Map<string, number>();
for (const r of train) trainCount.set(r.itemId, (trainCount.get(r.itemId) ?? 0) + 1);

interface Result {
  row: Row;
  lists: Map<string, string[]>;
  fallbacks: number;
  meanMs?: number;
  cpuMs?: number;
}
const results: Result[] = [];

const needsFunnel = rows.some((r) => r.overrides);
const scratch = mkdtempSync(join(tmpdir(), "recsys-eval-funnel-"));
try {
  const evalData = join(scratch, "data");
  const evalStore = join(scratch, "models");
  if (needsFunnel) {
    mkdirSync(evalData);
    copyFileSync(join(dataDir, "items.tsv"), join(evalData, "items.tsv"));
    copyFileSync(join(dataDir, "manifest.json"), join(evalData, "manifest.json"));
    writeFileSync(
      join(evalData, "interactions.tsv"),
      `user_id\titem_id\ttimestamp\trating\n${train
        .map((r) => `${r.userId}\t${r.itemId}\t${Math.round(r.timestampMs / 1000)}\t${r.rating}`)
        .join("\n")}\n`,
    );
    mkdirSync(evalStore);
    for (const model of readdirSync(resolve(values.store))) {
      if (model !== "swing") symlinkSync(resolve(values.store, model), join(evalStore, model));
    }
    execFileSync(
      process.execPath,
      [join(ROOT, "services/recall/dist/swing/build-cli.js"), "--data", evalData, "--store", evalStore],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
  }
  say(`${users.length} test users, ${train.length} training events; scratch ${scratch}`);

  for (const [i, row] of rows.entries()) {
    if (!row.overrides) {
      const t0 = performance.now();
      results.push({ row, lists: itemCf(train, users, count), fallbacks: 0 });
      say(`${row.name}: computed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      continue;
    }
    const stateDir = join(scratch, `state-${row.name.replace(/[^a-z0-9+-]/gi, "_")}`);
    mkdirSync(stateDir);
    say(`${row.name}: starting the funnel`);
    const serviceEnv = relaxedBudgetEnv(scratch, {
      name: row.name.replace(/[^a-z0-9+-]/gi, "_"),
      funnel: row.overrides,
      experiment: { name: "eval", variants: [{ name: "control", weight: 1 }] },
    });
    if (row.rerankEnv) serviceEnv.rerank = { ...serviceEnv.rerank, ...row.rerankEnv };
    const stack = await LocalStack.start({
      rootDir: ROOT,
      // Ports of their own per row: a stack that just stopped never holds the next one's.
      basePort: Number(values["base-port"]) + 20 * i,
      dataDir: evalData,
      modelStore: evalStore,
      stateDir,
      logDir: join(ROOT, "var", "log", "eval-funnel"),
      catalog: false,
      layout: "colocated",
      serviceEnv,
    });
    const client = createClient(RecommendService, stack.gatewayTarget);
    const lists = new Map<string, string[]>();
    let fallbacks = 0;
    let ms = 0;
    let cpuMs = 0;
    try {
      // The cost pass first (it also warms the JIT): one request at a time, the
      // funnel process's CPU from /proc. Then the quality pass.
      const cpu0 = stack.cpuTimeMs("gateway");
      const t0 = performance.now();
      for (const u of users) await client.recommend({ userId: u.userId, count }, { timeoutMs: 10_000 });
      ms = performance.now() - t0;
      cpuMs = stack.cpuTimeMs("gateway") - cpu0;
      for (const u of users) {
        const res = await client.recommend({ userId: u.userId, count }, { timeoutMs: 10_000 });
        if (res.degradations.some((d) => d.endsWith("_fallback"))) fallbacks++;
        lists.set(
          u.userId,
          res.items.map((i) => i.itemId),
        );
      }
    } finally {
      client.close();
      await stack.stopAll();
    }
    results.push({ row, lists, fallbacks, meanMs: ms / users.length, cpuMs: cpuMs / users.length });
    const m = metricsOf(lists);
    say(`${row.name}: HR@10 ${m.hr10.toFixed(4)}, NDCG@10 ${m.ndcg10.toFixed(4)}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

interface Metrics {
  hr10: number;
  hr20: number;
  ndcg10: number;
  ndcg20: number;
  coverage: number;
  diversity10: number;
  coldShare: number;
  newShare: number;
  hits: Set<string>;
}

function metricsOf(lists: Map<string, string[]>): Metrics {
  const tops = users.map((u) => ({ user: u, items: (lists.get(u.userId) ?? []).slice(0, 20) }));
  const ranked = retrievalMetrics(
    tops.map((t) => ({ items: t.items, target: t.user.targets[0]!.itemId })),
    [10, 20],
    [10, 20],
    items.length,
    20,
  );
  let diversity = 0;
  let shown = 0;
  let cold = 0;
  let fresh = 0;
  const hits = new Set<string>();
  for (const { user, items: list } of tops) {
    if (list.includes(user.targets[0]!.itemId)) hits.add(user.userId);
    diversity += genreDiversity(list.slice(0, 10));
    for (const id of list) {
      shown++;
      const n = trainCount.get(id) ?? 0;
      if (n <= COLD_MAX_EVENTS) cold++;
      if (n === 0) fresh++;
    }
  }
  return {
    hr10: ranked.hr[10]!,
    hr20: ranked.hr[20]!,
    ndcg10: ranked.ndcg[10]!,
    ndcg20: ranked.ndcg[20]!,
    coverage: ranked.coverage,
    diversity10: diversity / Math.max(1, tops.length),
    coldShare: shown ? cold / shown : 0,
    newShare: shown ? fresh / shown : 0,
    hits,
  };
}

/** Mean pairwise genre distance (1 − Jaccard of the genre sets) within one list. */
function genreDiversity(list: readonly string[]): number {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < list.length; i++) {
    const a = genresOf.get(list[i]!) ?? new Set<string>();
    for (let j = i + 1; j < list.length; j++) {
      const b = genresOf.get(list[j]!) ?? new Set<string>();
      let inter = 0;
      for (const g of a) if (b.has(g)) inter++;
      const union = a.size + b.size - inter;
      sum += union === 0 ? 0 : 1 - inter / union;
      pairs++;
    }
  }
  return pairs ? sum / pairs : 0;
}

/**
 * Item-based CF as the trainer's baseline computes it (evaluate.py): the
 * score of item i is the sum over the user's history items j of cos(j, i) on
 * the binary user x item matrix of the training events, popularity breaking
 * ties; history items are excluded, as the serving filters do.
 */
function itemCf(
  events: readonly Interaction[],
  testUsers: ReadonlyArray<{ userId: string; history: Interaction[] }>,
  k: number,
): Map<string, string[]> {
  const itemsOfUser = new Map<string, Set<string>>();
  const usersOfItem = new Map<string, Set<string>>();
  for (const e of events) {
    let is = itemsOfUser.get(e.userId);
    if (!is) itemsOfUser.set(e.userId, (is = new Set()));
    is.add(e.itemId);
    let us = usersOfItem.get(e.itemId);
    if (!us) usersOfItem.set(e.itemId, (us = new Set()));
    us.add(e.userId);
  }
  const invSqrt = (item: string) => 1 / Math.sqrt(Math.max(1, usersOfItem.get(item)?.size ?? 0));
  const out = new Map<string, string[]>();
  for (const u of testUsers) {
    const history = itemsOfUser.get(u.userId) ?? new Set<string>();
    // weight of each co-user: sum over shared history items j of 1/sqrt(n_j)
    const userWeight = new Map<string, number>();
    for (const j of history) {
      const w = invSqrt(j);
      for (const v of usersOfItem.get(j) ?? []) userWeight.set(v, (userWeight.get(v) ?? 0) + w);
    }
    const score = new Map<string, number>();
    for (const [v, w] of userWeight) {
      for (const i of itemsOfUser.get(v) ?? []) {
        if (!history.has(i)) score.set(i, (score.get(i) ?? 0) + w);
      }
    }
    const ranked = [...score.entries()]
      .map(([i, s]) => [i, s * invSqrt(i) + 1e-9 * (usersOfItem.get(i)?.size ?? 0)] as const)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, k)
      .map(([i]) => i);
    out.set(u.userId, ranked);
  }
  return out;
}

const measured = results.map((r) => ({ ...r, m: metricsOf(r.lists) }));
const base = measured.find((r) => r.row.name === "default") ?? measured[0]!;

if (values.json) {
  for (const r of measured) {
    process.stdout.write(
      `${JSON.stringify({
        name: r.row.name,
        "hr@10": r.m.hr10,
        "hr@20": r.m.hr20,
        "ndcg@10": r.m.ndcg10,
        "ndcg@20": r.m.ndcg20,
        coverage: r.m.coverage,
        "diversity@10": r.m.diversity10,
        cold_share: r.m.coldShare,
        new_share: r.m.newShare,
        users: users.length,
        answers_with_fallback: r.row.overrides ? r.fallbacks : null,
        cpu_ms_per_recommend: r.cpuMs ?? null,
      })}\n`,
    );
  }
}

const fmt = (x: number) => x.toFixed(4);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const lines = [
  `## Whole funnel (${new Date().toISOString().slice(0, 10)})`,
  "",
  `Command: \`${values.command}\` (data \`${values.data}\`, store \`${values.store}\`, count ${count}). Machine: ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")} at the end.`,
  "Each user's last event is held out; the services read the data without it (Swing rebuilt from it), and every test user",
  `asks a co-located funnel for ${count} items, over gRPC, with generous stage budgets. HR@K = the held-out item is in the first K.`,
  "Rows `recall`, `recall+prerank`, `recall+prerank+rank` cut the served funnel after that stage (its order; seen and excluded filters applied);",
  "`channel:X` is one recall channel alone; `item-cf` is computed in the harness on the same training events (cosine item-item, the trainer's baseline).",
  `Coverage: distinct items shown (top ${count}) / catalogue (${items.length}). Diversity@10: mean pairwise genre distance (1 − Jaccard) in the top 10.`,
  `Cold / new: share of shown items with ≤ ${COLD_MAX_EVENTS} / 0 training events. Cost: a first pass over the same users, one request at a time: mean latency at the client and the funnel process's CPU (/proc) per Recommend.`,
  `${users.length} test users; the seen filter removes history items, as in serving. "vs ${base.row.name}" counts users hit in the top 20 only by this row / only by ${base.row.name}.`,
  "",
  `| row | what | HR@10 | HR@20 | NDCG@10 | NDCG@20 | coverage | diversity@10 | cold | new | answers with a fallback | vs ${base.row.name} | latency, one at a time | CPU per Recommend |`,
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...measured.map((r) => {
    const only = [...r.m.hits].filter((u) => !base.m.hits.has(u)).length;
    const lost = [...base.m.hits].filter((u) => !r.m.hits.has(u)).length;
    const funnelRow = r.row.overrides !== undefined;
    return `| ${r.row.name} | ${r.row.describe} | ${fmt(r.m.hr10)} | ${fmt(r.m.hr20)} | ${fmt(r.m.ndcg10)} | ${fmt(r.m.ndcg20)} | ${pct(r.m.coverage)} | ${r.m.diversity10.toFixed(3)} | ${pct(r.m.coldShare)} | ${pct(r.m.newShare)} | ${funnelRow ? r.fallbacks : "-"} | ${r === base ? "-" : `+${only} / -${lost}`} | ${funnelRow ? `${r.meanMs!.toFixed(1)} ms` : "-"} | ${funnelRow ? `${r.cpuMs!.toFixed(1)} ms` : "-"} |`;
  }),
  "",
];
const report = `${lines.join("\n")}\n`;
if (!values.json) process.stdout.write(report);
if (values.out) {
  writeSection(values.out, "funnel", report, values.command);
  say(`wrote ${values.out}`);
}
