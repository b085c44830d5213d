#!/usr/bin/env node
/**
 * Start-up time and resident memory of each service on a dataset, measured
 * with the local runner (deploy/local, embedded mode): the numbers behind the
 * memory requests in k8s/ (docs/deploy.md, "Sizing").
 *   node deploy/sizing/measure-memory.mjs [--data DIR] [--store DIR] [--base-port N]
 * Needs the build (npx tsc -b) and the dataset (npm run data).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LocalStack } from "../local/dist/index.js";

const root = resolve(fileURLToPath(new URL("../../", import.meta.url)));
const { values } = parseArgs({
  options: {
    data: { type: "string", default: join(root, "data", "ml-latest-small") },
    store: { type: "string", default: join(root, "var", "models") },
    "base-port": { type: "string", default: "53051" },
  },
});
const state = mkdtempSync(join(tmpdir(), "recsys-sizing-"));
const started = performance.now();
const stack = await LocalStack.start({
  rootDir: root,
  basePort: Number(values["base-port"]),
  dataDir: resolve(values.data),
  modelStore: resolve(values.store),
  logDir: join(state, "log"),
  stateDir: join(state, "state"),
  startTimeoutMs: 15 * 60_000,
});
const seconds = ((performance.now() - started) / 1000).toFixed(0);
try {
  process.stdout.write(`dataset ${values.data}: all services SERVING after ${seconds} s\n`);
  process.stdout.write("service   RSS MiB  CPU s (start-up)\n");
  for (const service of ["gateway", "recall", "prerank", "rank", "rerank"]) {
    const rss = (stack.rssBytes(service) / 2 ** 20).toFixed(0).padStart(7);
    const cpu = (stack.cpuTimeMs(service) / 1000).toFixed(1).padStart(8);
    process.stdout.write(`${service.padEnd(8)} ${rss}  ${cpu}\n`);
  }
} finally {
  await stack.stopAll();
  rmSync(state, { recursive: true, force: true });
}
