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
 *
 * A step marked `thread` runs on a worker thread of its own instead (its own
 * event loop, so on a 2-core machine the funnel uses both cores): the worker
 * gets the step's environment as its process.env, and once the service there
 * is SERVING its methods are forwarded to it from this thread
 * (`forwardToWorker`). Signals stop the services in reverse order
 * (shared/src/runtime.ts), the threads among them.
 */
import { once } from "node:events";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { createLogger, forwardToWorker, onProcessStop } from "@recsys/shared";
import type { ColocatedPlan } from "./stack.js";

const raw = process.env.RECSYS_COLOCATED_PLAN;
if (!raw) {
  process.stderr.write("colocated: RECSYS_COLOCATED_PLAN is not set (it is written by LocalStack)\n");
  process.exit(2);
}
const plan = JSON.parse(raw) as ColocatedPlan;
const base = { ...process.env };
const logger = createLogger("colocated");

async function startOnThread(step: ColocatedPlan[number]): Promise<void> {
  const worker = new Worker(new URL(pathToFileURL(step.entry).href), {
    env: { ...base, ...step.env },
    workerData: { recsysStageThread: true },
  });
  const ready = new Promise<string[]>((resolve, reject) => {
    worker.on("message", (msg: { type?: string; paths?: string[] }) => {
      if (msg.type === "ready") resolve(msg.paths ?? []);
    });
    worker.once("error", reject);
    worker.once("exit", (code) =>
      reject(new Error(`${step.service} thread exited with code ${code} during start-up`)),
    );
  });
  const paths = await ready;
  forwardToWorker(worker, paths);
  // A stage thread that dies takes the process down, as a crash on the main thread
  // would: the supervisor (LocalStack, Kubernetes) sees it, instead of a funnel
  // whose calls to that stage time out for ever.
  let stopping = false;
  worker.on("exit", (code) => {
    if (stopping) return;
    logger.error({ stage: step.service, code }, "stage thread exited; stopping the process");
    process.exit(1);
  });
  logger.info(
    { stage: step.service, thread: worker.threadId, methods: paths },
    "stage runs on its own thread",
  );
  onProcessStop(step.service, logger, async () => {
    stopping = true;
    worker.postMessage({ type: "stop" });
    await Promise.race([once(worker, "exit"), new Promise((r) => setTimeout(r, 10_000))]);
  });
}

for (const step of plan) {
  if (step.thread) {
    await startOnThread(step);
    continue;
  }
  for (const key of Object.keys(process.env)) if (!(key in base)) delete process.env[key];
  Object.assign(process.env, base, step.env);
  await import(pathToFileURL(step.entry).href);
}
