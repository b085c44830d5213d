/**
 * What the whole funnel recommends, offline: hit rate of each user's held-out
 * last event in the `count` items Recommend returns, for one or more funnel
 * configurations (candidate quotas, prerank keep, ...). Stage evaluations
 * (`npm run eval`, the rank training's report) score one stage in isolation;
 * this one answers "what does a cheaper funnel cost in what users get".
 *
 *   node services/gateway/dist/eval/funnel-cli.js [--config NAME=FILE.json]... [--count 20]
 *     [--data data/ml-latest-small] [--store var/models] [--users 0] [--out docs/evaluation.md]
 *
 * How: each user's last event is held out (the models were trained without it;
 * docs/models.md). The data directory the services read is rewritten without
 * those events, and Swing is rebuilt from it into a scratch model store that
 * links the other models, so no serving table knows a target. For each
 * configuration a co-located funnel is started on it (generous budgets: this
 * measures quality, not latency) and every test user asks for `count` items
 * once, over gRPC. A `--config` file holds the `funnel` overrides of a
 * RECSYS_FUNNEL_CONFIG file; the experiment is pinned to one variant.
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
import { createClient, loadInteractions, perUserTemporalSplit, writeSection } from "@recsys/shared";
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
    "base-port": { type: "string", default: "57351" },
    command: { type: "string", default: "npm run eval:funnel" },
  },
});
const count = Number(values.count);
const say = (m: string) => process.stderr.write(`[eval:funnel] ${m}\n`);

// Configurations: "default" is the funnel as shipped.
const configs: Array<{ name: string; overrides: Record<string, unknown> }> = [];
for (const spec of values.config ?? ["default"]) {
  if (spec === "default") {
    configs.push({ name: "default", overrides: {} });
    continue;
  }
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new Error(`--config ${spec}: expected NAME=FILE.json or "default"`);
  const parsed = JSON.parse(readFileSync(spec.slice(eq + 1), "utf8")) as { funnel?: Record<string, unknown> };
  configs.push({ name: spec.slice(0, eq), overrides: parsed.funnel ?? {} });
}

// Held-out split, and a data directory without the targets.
const dataDir = resolve(values.data);
const interactions = await loadInteractions(dataDir);
const { train, test } = perUserTemporalSplit(interactions, 1);
const users = Number(values.users) > 0 ? test.slice(0, Number(values.users)) : test;
const scratch = mkdtempSync(join(tmpdir(), "recsys-eval-funnel-"));
const evalData = join(scratch, "data");
mkdirSync(evalData);
copyFileSync(join(dataDir, "items.tsv"), join(evalData, "items.tsv"));
copyFileSync(join(dataDir, "manifest.json"), join(evalData, "manifest.json"));
writeFileSync(
  join(evalData, "interactions.tsv"),
  `user_id\titem_id\ttimestamp\trating\n${train
    .map((r) => `${r.userId}\t${r.itemId}\t${Math.round(r.timestampMs / 1000)}\t${r.rating}`)
    .join("\n")}\n`,
);
const evalStore = join(scratch, "models");
mkdirSync(evalStore);
for (const model of readdirSync(resolve(values.store))) {
  if (model !== "swing") symlinkSync(resolve(values.store, model), join(evalStore, model));
}
execFileSync(
  process.execPath,
  [join(ROOT, "services/recall/dist/swing/build-cli.js"), "--data", evalData, "--store", evalStore],
  { stdio: ["ignore", "ignore", "inherit"] },
);
say(`${users.length} test users, ${train.length} training events; scratch ${scratch}`);

interface Result {
  name: string;
  funnel: string;
  hr10: number;
  hrCount: number;
  ndcg: number;
  fallbacks: number;
  meanMs: number;
  cpuMs: number;
  hits: Set<string>;
}
const results: Result[] = [];
try {
  for (const config of configs) {
    const funnel = applyOverrides(homeFeed, config.overrides as never);
    const stateDir = join(scratch, `state-${config.name}`);
    mkdirSync(stateDir);
    say(`${config.name}: starting the funnel`);
    const stack = await LocalStack.start({
      rootDir: ROOT,
      basePort: Number(values["base-port"]),
      dataDir: evalData,
      modelStore: evalStore,
      stateDir,
      logDir: join(ROOT, "var", "log", "eval-funnel"),
      catalog: false,
      layout: "colocated",
      serviceEnv: relaxedBudgetEnv(scratch, {
        name: config.name,
        funnel: config.overrides,
        experiment: { name: "eval", variants: [{ name: "control", weight: 1 }] },
      }),
    });
    const client = createClient(RecommendService, stack.gatewayTarget);
    let hr10 = 0;
    let hrCount = 0;
    let ndcg = 0;
    let fallbacks = 0;
    const hits = new Set<string>();
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
        const rank = res.items.findIndex((i) => i.itemId === u.targets[0]!.itemId);
        if (rank >= 0) {
          hits.add(u.userId);
          hrCount++;
          if (rank < 10) hr10++;
          ndcg += 1 / Math.log2(rank + 2);
        }
      }
    } finally {
      client.close();
      await stack.stopAll();
    }
    const n = users.length;
    const quotas = Object.entries(funnel.recall.channels)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    results.push({
      name: config.name,
      funnel: `${quotas}; prerank keep ${funnel.prerank.keep}`,
      hr10: hr10 / n,
      hrCount: hrCount / n,
      ndcg: ndcg / n,
      fallbacks,
      meanMs: ms / n,
      cpuMs: cpuMs / n,
      hits,
    });
    say(`${config.name}: HR@${count} ${(hrCount / n).toFixed(4)}, HR@10 ${(hr10 / n).toFixed(4)}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const base = results[0]!;
const fmt = (x: number) => x.toFixed(4);
const lines = [
  `## Whole funnel (${new Date().toISOString().slice(0, 10)})`,
  "",
  `Command: \`${values.command}\` (data \`${values.data}\`, store \`${values.store}\`, count ${count}). Machine: ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")} at the end.`,
  "Each user's last event is held out; the services read the data without it (Swing rebuilt from it), and every test user",
  `asks a co-located funnel for ${count} items, over gRPC, with generous stage budgets. HR = the held-out item is in the answer.`,
  "Cost: a first pass over the same users, one request at a time: mean latency at the client and the funnel process's CPU (/proc) per Recommend.",
  `${users.length} test users; the seen filter removes history items, as in serving. "vs ${base.name}" counts users hit only by this row / only by ${base.name}.`,
  "",
  `| configuration | funnel | HR@10 | HR@${count} | NDCG@${count} | answers with a fallback | vs ${base.name} | latency, one at a time | CPU per Recommend |`,
  "|---|---|---|---|---|---|---|---|---|",
  ...results.map((r) => {
    const only = [...r.hits].filter((u) => !base.hits.has(u)).length;
    const lost = [...base.hits].filter((u) => !r.hits.has(u)).length;
    return `| ${r.name} | ${r.funnel} | ${fmt(r.hr10)} | ${fmt(r.hrCount)} | ${fmt(r.ndcg)} | ${r.fallbacks} | ${r === base ? "-" : `+${only} / -${lost}`} | ${r.meanMs.toFixed(1)} ms | ${r.cpuMs.toFixed(1)} ms |`;
  }),
  "",
];
const report = `${lines.join("\n")}\n`;
process.stdout.write(report);
if (values.out) {
  writeSection(values.out, "funnel", report, values.command);
  say(`wrote ${values.out}`);
}
