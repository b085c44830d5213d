/**
 * npm run bench:recall — the recall stage over gRPC, one request in flight:
 * the kuaiformer channel alone at 4 interests x 250 (quota 1000), the
 * generative channel alone (constrained beam search, 100 and 300 beams), and the
 * full default channel mix without and with a free-text query (none repeated),
 * for real MovieLens users. Starts its own stack.
 *
 *   node services/recall/dist/eval/latency-cli.js [--requests 500] [--store var/models] [--cpu-prof DIR]
 * (--cpu-prof: the recall service runs under V8's sampler and writes its
 * .cpuprofile to DIR on exit; node loadtest/dist/src/cpuprof.js DIR summarises it)
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { LocalStack } from "@recsys/local";
import { createClient, EventType, encodeUser, groupByUser, loadInteractions } from "@recsys/shared";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "500" },
    store: { type: "string", default: "var/models" },
    data: { type: "string", default: "data/ml-latest-small" },
    "base-port": { type: "string", default: "57151" },
    "cpu-prof": { type: "string" },
  },
});
const rootDir = resolve(".");
const users = [...groupByUser(await loadInteractions(values.data)).entries()];
const stack = await LocalStack.start({
  rootDir,
  basePort: Number(values["base-port"]),
  modelStore: resolve(values.store),
  dataDir: resolve(values.data),
  logDir: join(rootDir, "var", "log", "bench-recall"),
  ...(values["cpu-prof"]
    ? { nodeArgs: { recall: ["--cpu-prof", `--cpu-prof-dir=${resolve(values["cpu-prof"])}`] } }
    : {}),
});
const client = createClient(RecallService, stack.target("recall"));
const ONLY_GENERATIVE = { kuaiformer: 0, swing: 0, popular: 0, fresh: 0, query: 0 };
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
try {
  // Free-text queries, none repeated (the query channel caches query vectors).
  const words = ["space", "funny", "war", "love", "robot", "family", "crime", "ghost", "music", "road trip"];
  const queryFor = (i: number) => `${words[i % words.length]} ${words[(i * 7 + 3) % words.length]} ${i}`;
  for (const [name, quotas, withQuery] of [
    ["kuaiformer 4x250 only", { kuaiformer: 1000, swing: 0, popular: 0, fresh: 0, query: 0 }, false],
    ["generative only, 100 beams", { ...ONLY_GENERATIVE, generative: 100 }, false],
    ["generative only, 300 beams", { ...ONLY_GENERATIVE, generative: 300 }, false],
    ["default channel mix", {}, false],
    ["default channel mix, with a query", {}, true],
  ] as const) {
    const latencies: number[] = [];
    const counts: number[] = [];
    const n = Number(values.requests);
    for (let i = 0; i < n + 50; i++) {
      const [userId, rows] = users[(i * 7919) % users.length]!;
      const history = rows.slice(-256).map((r) => ({
        itemId: r.itemId,
        timestampMs: r.timestampMs,
        type: EventType.RATING,
        value: r.rating,
      }));
      const user = encodeUser({ userId, known: true, blockedItemIds: [], earlierSeenItemIds: [], history });
      const t0 = performance.now();
      const res = await client.recall(
        { user, maxCandidates: 1500, channelQuotas: quotas, query: withQuery ? queryFor(i) : "" },
        { timeoutMs: 1_000 },
      );
      const ms = performance.now() - t0;
      if (i >= 50) {
        latencies.push(ms);
        counts.push(res.candidates?.itemIds.split("\n").length ?? 0);
      }
    }
    process.stdout.write(
      `${name}: p50 ${quantile(latencies, 0.5).toFixed(2)} ms, p99 ${quantile(latencies, 0.99).toFixed(2)} ms, ` +
        `max ${Math.max(...latencies).toFixed(2)} ms over ${latencies.length} requests; mean candidates ${(counts.reduce((a, b) => a + b, 0) / counts.length).toFixed(0)}\n`,
    );
  }
} finally {
  client.close();
  await stack.stopAll();
}
