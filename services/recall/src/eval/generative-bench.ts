/**
 * Where the generative channel's time goes, in-process (no gRPC, one search
 * at a time): `generate()` for real MovieLens users (last 256 events), at 100
 * and 300 beams: wall time per search, CPU of the whole process per search
 * (the ONNX worker included), and the ONNX Runtime time inside it.
 *
 *   node services/recall/dist/eval/generative-bench.js [--store var/models] [--data data/ml-latest-small] [--requests 200]
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { groupByUser, loadInteractions, OnnxPool } from "@recsys/shared";
import { generate, loadGenerativeModel } from "../models/generative-model.js";

const { values } = parseArgs({
  options: {
    store: { type: "string", default: "var/models" },
    data: { type: "string", default: "data/ml-latest-small" },
    requests: { type: "string", default: "200" },
  },
});
const n = Number(values.requests);
const dir = join(values.store, "generative");
const version = readFileSync(join(dir, "CURRENT"), "utf8").trim();
const versionDir = join(dir, version);
const manifest = JSON.parse(readFileSync(join(versionDir, "manifest.json"), "utf8"));
const pool = new OnnxPool({ threads: 1, maxSessions: 4 });
const model = await loadGenerativeModel(versionDir, manifest, pool);
const users = [...groupByUser(await loadInteractions(values.data)).values()];
let onnxMs = 0;
const metrics = { onnxInference: { observe: (_l: unknown, s: number) => void (onnxMs += s * 1000) } };
const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!.toFixed(2);
const rows: string[] = [];
for (const width of [100, 300]) {
  for (let i = 0; i < 20; i++)
    await generate(
      model,
      pool,
      users[i]!.slice(-256).map((r) => r.itemId),
      width,
    );
  const wall: number[] = [];
  onnxMs = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const history = users[(i * 7919) % users.length]!.slice(-256).map((r) => r.itemId);
    const t0 = performance.now();
    await generate(model, pool, history, width, metrics as never);
    wall.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  wall.sort((a, b) => a - b);
  rows.push(
    `| ${width} | ${q(wall, 0.5)} | ${q(wall, 0.99)} | ${((cpu.user + cpu.system) / 1000 / n).toFixed(2)} | ${(onnxMs / n).toFixed(2)} |`,
  );
}
await pool.close();
console.log(`### generative ${version}: ${n} searches each after 20 warm-up
${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadavg()
  .map((l) => l.toFixed(2))
  .join(" ")} at the end, ${new Date().toISOString()}

| beams | p50 ms | p99 ms | CPU per search ms | ONNX per search ms |
|---|---|---|---|---|
${rows.join("\n")}`);
