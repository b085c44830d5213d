/**
 * Where the kuaiformer channel's time goes, in-process (no gRPC, one call at a
 * time): the ONNX user encoder on its worker thread (history encoding
 * included), and retrieve() (the HNSW searches, the merge, and the
 * "because you watched" reason) at several reason windows.
 *
 *   node services/recall/dist/eval/retrieve-bench.js [--store var/models] [--data data/ml-latest-small]
 *     [--model kuaiformer] [--quota 1000] [--requests 500]
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EventType, groupByUser, loadInteractions, OnnxPool } from "@recsys/shared";
import { retrieve } from "../channels/sequence.js";
import { encodeHistories, loadSequenceModel } from "../models/sequence-model.js";

const { values } = parseArgs({
  options: {
    store: { type: "string", default: "var/models" },
    data: { type: "string", default: "data/ml-latest-small" },
    model: { type: "string", default: "kuaiformer" },
    quota: { type: "string", default: "1000" },
    requests: { type: "string", default: "500" },
  },
});
const n = Number(values.requests);
const quota = Number(values.quota);
const dir = join(values.store, values.model);
const version = readFileSync(join(dir, "CURRENT"), "utf8").trim();
const manifest = JSON.parse(readFileSync(join(dir, version, "manifest.json"), "utf8"));
const pool = new OnnxPool({ threads: 1 });
const model = await loadSequenceModel(values.model, join(dir, version), manifest, pool);
const users = [...groupByUser(await loadInteractions(values.data)).values()];
const history = (i: number) =>
  users[(i * 7919) % users.length]!.slice(-256).map((r) => ({
    itemId: r.itemId,
    timestampMs: r.timestampMs,
    type: EventType.RATING,
    value: r.rating,
  }));
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))]!;
const row = (name: string, xs: number[]) =>
  `| ${name} | ${q(xs, 0.5).toFixed(2)} | ${q(xs, 0.99).toFixed(2)} |`;

const encoder: number[] = [];
const interests: Float32Array[] = [];
for (let i = 0; i < n + 50; i++) {
  const t0 = performance.now();
  const { feeds } = encodeHistories(model, [history(i)]);
  const res = await pool.run(model.modelPath, feeds);
  if (i >= 50) encoder.push(performance.now() - t0);
  interests.push(new Float32Array(res.outputs.interests!.data));
}
const lines = [row("encode history + ONNX user encoder (worker)", encoder)];
for (const window of [0, 10, 30]) {
  const ms: number[] = [];
  for (let i = 0; i < n + 50; i++) {
    const ids = history(i).map((e) => e.itemId);
    const t0 = performance.now();
    retrieve(model, interests[i]!, ids, quota, values.model, window);
    if (i >= 50) ms.push(performance.now() - t0);
  }
  lines.push(
    row(`retrieve(), quota ${quota}, reason window ${window}${window === 0 ? " (no reasons)" : ""}`, ms),
  );
}
process.stdout.write(
  `### ${values.model} ${version}: ${n} calls each after 50 warm-up\n` +
    `${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} at the end, ${new Date().toISOString()}\n\n` +
    `| part | p50 ms | p99 ms |\n|---|---|---|\n${lines.join("\n")}\n`,
);
await pool.close();
