/**
 * Process entry of the co-located layout (stack.ts): runs several services'
 * entry points in this one process, in the order of RECSYS_COLOCATED_PLAN,
 * each with its own environment (ports, metrics port, spill directory).
 *
 * Every service reads its configuration once, when its runtime is created at
 * the top of its entry point, so setting the environment before each import
 * gives each the configuration it would have had in its own process. An
 * import resolves once the entry point's top-level code is done, i.e. when
 * that service is loaded and SERVING; the gateway comes last and finds its
 * stages registered for in-process calls (shared/src/grpc/local.ts).
 * Signals stop the services in reverse order (shared/src/runtime.ts).
 */
import { pathToFileURL } from "node:url";
import type { ColocatedPlan } from "./stack.js";

const raw = process.env.RECSYS_COLOCATED_PLAN;
if (!raw) {
  process.stderr.write("colocated: RECSYS_COLOCATED_PLAN is not set (it is written by LocalStack)\n");
  process.exit(2);
}
const plan = JSON.parse(raw) as ColocatedPlan;
const base = { ...process.env };
for (const step of plan) {
  for (const key of Object.keys(process.env)) if (!(key in base)) delete process.env[key];
  Object.assign(process.env, base, step.env);
  await import(pathToFileURL(step.entry).href);
}
