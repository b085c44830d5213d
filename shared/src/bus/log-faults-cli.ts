#!/usr/bin/env node
/**
 * npm run fault:log [-- --runs 1000 --seed 1]: the long randomised fault
 * campaign of the durable log (log-faults.ts). Prints a summary by fault kind
 * and exits 1 if any acknowledged record was lost or a check failed.
 */
import { parseArgs } from "node:util";
import { type FaultKind, runFaultCampaign } from "./log-faults.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "1000" }, seed: { type: "string", default: "1" } },
});
const runs = Number(values.runs);
const seed = Number(values.seed);
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`--runs must be a positive integer, got ${values.runs}`);
const t0 = performance.now();
let done = 0;
const results = await runFaultCampaign(runs, seed, () => {
  if (++done % 100 === 0) process.stderr.write(`[fault:log] ${done}/${runs} runs\n`);
});
const kinds: FaultKind[] = ["write", "kill", "damage"];
let failed = 0;
for (const kind of kinds) {
  const of = results.filter((r) => r.kind === kind);
  const acknowledged = of.reduce((s, r) => s + r.acknowledged, 0);
  const lost = of.reduce((s, r) => s + r.lost.length, 0);
  const damaged = of.reduce((s, r) => s + r.damaged, 0);
  const problems = of.filter((r) => r.problem);
  failed += problems.length + (lost > 0 ? 1 : 0);
  process.stdout.write(
    `${kind.padEnd(7)} ${String(of.length).padStart(5)} runs  ${String(acknowledged).padStart(7)} acknowledged  ${lost} lost  ${damaged} damage reports  ${problems.length} failed checks\n`,
  );
  for (const p of problems.slice(0, 5)) process.stdout.write(`  seed ${p.seed}: ${p.problem}\n`);
}
process.stdout.write(
  `${runs} runs (seed ${seed}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${failed === 0 ? "passed" : `${failed} FAILED`}\n`,
);
process.exit(failed === 0 ? 0 : 1);
