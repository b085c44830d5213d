/**
 * Encoder benchmark (a command, not a test): batch throughput over item texts
 * and the latency of one short query per call, through SentenceEncoder and
 * OnnxPool exactly as the services use them. Prints a Markdown section.
 *   node shared/dist/encoder/bench-cli.js [--data data/ml-latest-small] [--items 2048]
 *     [--batch 32] [--queries 300] [--threads 1] [--intra-op 1]
 */
import { execSync } from "node:child_process";
import { availableParallelism, cpus, loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { loadItems } from "../data/dataset.js";
import { OnnxPool } from "../onnx/pool.js";
import { itemText } from "./content.js";
import { DEFAULT_ENCODER_DIR, SentenceEncoder } from "./text-encoder.js";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: process.env.RECSYS_DATA_DIR ?? "data/ml-latest-small" },
    encoder: { type: "string", default: process.env.RECSYS_ENCODER_DIR ?? DEFAULT_ENCODER_DIR },
    items: { type: "string", default: "2048" },
    batch: { type: "string", default: "32" },
    queries: { type: "string", default: "300" },
    threads: { type: "string", default: "1" },
    "intra-op": { type: "string", default: "1" },
  },
});
const nItems = Number(values.items);
const batchSize = Number(values.batch);
const nQueries = Number(values.queries);
const threads = Number(values.threads);
const intraOp = Number(values["intra-op"]);

const QUERIES = [
  "funny animated movie for kids",
  "dark psychological thriller",
  "space adventure",
  "romantic comedy in paris",
  "war drama",
  "scary haunted house",
  "heist movie",
  "documentary about music",
];

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const items = await loadItems(values.data);
const texts = items.slice(0, nItems).map(itemText);
const pool = new OnnxPool({ threads, intraOpNumThreads: intraOp });
try {
  const encoder = await SentenceEncoder.load(values.encoder, pool, { batchSize, maxInFlight: threads + 1 });

  // Baseline: the event loop's delay with nothing to do (machine contention).
  const idle = monitorEventLoopDelay({ resolution: 10 });
  idle.enable();
  await new Promise((r) => setTimeout(r, 3000));
  idle.disable();

  // Batch throughput, with the event loop's delay measured meanwhile.
  await encoder.encode(texts.slice(0, batchSize * 2)); // warm-up
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = performance.now();
  const batch = await encoder.encode(texts);
  const batchSeconds = (performance.now() - t0) / 1000;
  lag.disable();
  const meanTokens = batch.tokenCounts.reduce((a, b) => a + b, 0) / batch.tokenCounts.length;

  // One short query per call, sequentially (what the query recall channel does per request).
  for (let i = 0; i < 20; i++) await encoder.encode([QUERIES[i % QUERIES.length]!]);
  const latencies: number[] = [];
  const tokenizeUs: number[] = [];
  for (let i = 0; i < nQueries; i++) {
    const q = QUERIES[i % QUERIES.length]!;
    const s = performance.now();
    encoder.tokenize(q);
    tokenizeUs.push((performance.now() - s) * 1000);
    const started = performance.now();
    await encoder.encode([q]);
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  tokenizeUs.sort((a, b) => a - b);

  const cpu = cpus()[0]?.model ?? "unknown";
  const date = execSync("date", { encoding: "utf8" }).trim();
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");
  const lines = [
    `- Command: \`node shared/dist/encoder/bench-cli.js --items ${nItems} --batch ${batchSize} --queries ${nQueries} --threads ${threads} --intra-op ${intraOp}\``,
    `- Machine: nproc ${availableParallelism()}, CPU ${cpu}, load average at the end ${load}; date: ${date}`,
    `- Encoder: ${encoder.identity.name} (${encoder.identity.source}), ONNX Runtime CPU, ${threads} worker thread(s), intraOpNumThreads ${intraOp}, maxTokens ${encoder.maxTokens}`,
    "",
    "| measure | value |",
    "| --- | --- |",
    `| batch encode, ${texts.length} item texts (mean ${meanTokens.toFixed(1)} word pieces), batch ${batchSize} | ${(texts.length / batchSeconds).toFixed(0)} items/s (${batchSeconds.toFixed(1)} s) |`,
    `| event-loop delay during the batch encode, p99 / max | ${(lag.percentile(99) / 1e6).toFixed(1)} / ${(lag.max / 1e6).toFixed(1)} ms |`,
    `| event-loop delay idle for 3 s (baseline: machine contention), p99 / max | ${(idle.percentile(99) / 1e6).toFixed(1)} / ${(idle.max / 1e6).toFixed(1)} ms |`,
    `| single short query encode (${nQueries} sequential calls), p50 / p99 / max | ${percentile(latencies, 50).toFixed(2)} / ${percentile(latencies, 99).toFixed(2)} / ${latencies.at(-1)!.toFixed(2)} ms |`,
    `| of which tokenisation on the caller's thread, p50 / p99 | ${percentile(tokenizeUs, 50).toFixed(0)} / ${percentile(tokenizeUs, 99).toFixed(0)} µs |`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
} finally {
  await pool.close();
}
