#!/usr/bin/env node
/**
 * Init-container helper, copied into every Node image: waits until each path
 * on the command line exists and is not empty, then exits 0. The funnel pods
 * use it to wait for the trainer job's first run on an empty model store
 * (k8s/base/funnel/*.yaml), so they show "Init" instead of crash-looping.
 *   node deploy/docker/wait-for-files.mjs <path>...
 */
import { statSync } from "node:fs";

const paths = process.argv.slice(2);
const POLL_MS = 2_000;
const REPORT_EVERY_MS = 30_000;

function missing() {
  return paths.filter((p) => {
    try {
      return statSync(p).size === 0;
    } catch {
      return true;
    }
  });
}

process.once("SIGTERM", () => process.exit(143));
const started = Date.now();
let reported = 0;
for (;;) {
  const left = missing();
  if (left.length === 0) break;
  if (Date.now() - reported >= REPORT_EVERY_MS) {
    const waited = Math.round((Date.now() - started) / 1000);
    process.stdout.write(`waiting ${waited}s for ${left.join(", ")} (run the trainer job: docs/deploy.md)\n`);
    reported = Date.now();
  }
  await new Promise((resolve) => setTimeout(resolve, POLL_MS));
}
process.stdout.write(`present: ${paths.join(", ")}\n`);
