/**
 * Process skeleton shared by every service: common configuration, logger,
 * metrics endpoint, gRPC server, readiness, and signal handling.
 *
 *   const rt = createRuntime("rank", spec);     // config validated here
 *   rt.server.add(RankService, impl);            // handlers call rt.requireReady()
 *   await rt.start();                            // listening, health NOT_SERVING
 *   ...load models...
 *   rt.ready();                                  // health SERVING
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { status } from "@grpc/grpc-js";
import { type ConfigOf, type EnvSpec, env, loadConfigOrExit } from "./config.js";
import type { AdmissionOptions } from "./grpc/admission.js";
import { RpcError } from "./grpc/errors.js";
import { localPaths, serveLocalToParent } from "./grpc/local.js";
import { RpcServer } from "./grpc/server.js";
import { createLogger, type Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { startTracing, stopTracing } from "./tracing.js";

/** Keys every service reads. */
export const commonConfigSpec = {
  /** Log level of the service's logger (pino). */
  RECSYS_LOG_LEVEL: env.oneOf(["trace", "debug", "info", "warn", "error"], "info"),
  /** Port of the Prometheus /metrics endpoint (all interfaces); 0 takes any free port (logged as metricsPort). */
  RECSYS_METRICS_PORT: env.int(0, 0, 65535),
  /** gRPC calls handled at once; beyond, new ones are shed with RESOURCE_EXHAUSTED. */
  RECSYS_MAX_CONCURRENT_CALLS: env.int(256, 1, 100_000),
  /** Largest gRPC request accepted, bytes; larger ones get RESOURCE_EXHAUSTED. */
  RECSYS_MAX_REQUEST_BYTES: env.int(4 * 1024 * 1024, 1024),
  /** On SIGTERM or SIGINT, how long the gRPC server waits for calls in flight before cancelling them, ms. */
  RECSYS_SHUTDOWN_GRACE_MS: env.int(5_000, 0, 120_000),
  /** The dataset directory (items.tsv, interactions.tsv from `npm run data`) the catalog and history are loaded from. */
  RECSYS_DATA_DIR: env.str("data/ml-latest-small"),
  /** The model store: a directory per model with its versions and a CURRENT pointer (written by the trainers). */
  RECSYS_MODEL_STORE: env.str("var/models"),
} satisfies EnvSpec;

export interface Runtime<C> {
  readonly name: string;
  readonly config: C;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly server: RpcServer;
  /** Binds the gRPC and metrics ports. Health answers NOT_SERVING until `ready()`. */
  start(address: string): Promise<number>;
  ready(): void;
  /** Back to NOT_SERVING (a dependency failed at run time); `ready()` again once it recovers. */
  notReady(reason: string): void;
  /**
   * NOT_SERVING for good: damage an operator must look at (a quarantined log
   * region). `ready()` no longer flips health to SERVING; calls still run.
   */
  fault(reason: string): void;
  isReady(): boolean;
  /** Throws UNAVAILABLE while the service is still loading. */
  requireReady(): void;
  onShutdown(fn: () => Promise<void> | void): void;
}

/** The runtimes of this process: one per service, several in the co-located layout. */
const inProcess: Array<{ stop(signal: string): Promise<void>; logger: Logger }> = [];
let handlersInstalled = false;
let stopping = false;

/**
 * Signals stop every runtime of the process, the last created first (in the
 * co-located layout the gateway, so it stops sending work to its stages and
 * flushes its feedback before they go), then exit.
 */
async function stopProcess(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const rt of [...inProcess].reverse()) await rt.stop(signal);
  try {
    await stopTracing(); // flushes the spans of the last calls
  } catch (err) {
    inProcess[0]?.logger.warn({ err }, "flushing traces failed");
  }
  process.exit(0);
}

/**
 * Something else the process must stop with its runtimes, in the same
 * reverse order (a stage on a worker thread of the co-located layout).
 */
export function onProcessStop(name: string, logger: Logger, stop: (signal: string) => Promise<void>): void {
  inProcess.push({ stop, logger });
  logger.debug({ name }, "registered for process stop");
}

/** Set by the co-located host on a stage's worker thread (deploy/local/src/colocated.ts). */
const onStageThread =
  !isMainThread && (workerData as { recsysStageThread?: boolean } | null)?.recsysStageThread;

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  if (onStageThread && parentPort) {
    // A stage on a worker thread: the parent forwards calls and says when to stop.
    serveLocalToParent(parentPort);
    parentPort.on("message", (msg: { type?: string }) => {
      if (msg.type === "stop") void stopProcess("parent thread");
    });
  }
  process.once("SIGTERM", () => void stopProcess("SIGTERM"));
  process.once("SIGINT", () => void stopProcess("SIGINT"));
  process.on("unhandledRejection", (err) => inProcess[0]?.logger.error({ err }, "unhandled rejection"));
  if (process.env.RECSYS_EXIT_WITH_PARENT === "1") {
    // Local runs only (set by the local runner): if the launching process dies
    // without stopping us, shut down instead of holding ports as an orphan.
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) void stopProcess("parent exited");
    }, 1_000).unref();
  }
}

export function createRuntime<S extends EnvSpec>(
  name: string,
  spec: S,
  options: {
    /** Adaptive admission per method name, from the validated config (RpcServerOptions.admission). */
    readonly admission?: (
      config: ConfigOf<typeof commonConfigSpec> & ConfigOf<S>,
    ) => Readonly<Record<string, AdmissionOptions>>;
  } = {},
): Runtime<ConfigOf<typeof commonConfigSpec> & ConfigOf<S>> {
  const config = loadConfigOrExit(name, { ...commonConfigSpec, ...spec }) as ConfigOf<
    typeof commonConfigSpec
  > &
    ConfigOf<S>;
  startTracing(name); // once per process, only when OTEL_* asks for it
  const logger = createLogger(name, config.RECSYS_LOG_LEVEL);
  const metrics = new Metrics(name);
  const server = new RpcServer({
    name,
    logger,
    metrics,
    maxReceiveMessageBytes: config.RECSYS_MAX_REQUEST_BYTES,
    maxConcurrentCalls: config.RECSYS_MAX_CONCURRENT_CALLS,
    shutdownGraceMs: config.RECSYS_SHUTDOWN_GRACE_MS,
    ...(options.admission ? { admission: options.admission(config) } : {}),
  });
  let isReady = false;
  let faulted: string | undefined;
  const shutdownHooks: Array<() => Promise<void> | void> = [];
  inProcess.push({
    async stop(signal) {
      logger.info({ signal }, "shutting down: draining in-flight calls");
      await server.shutdown();
      for (const hook of shutdownHooks) {
        try {
          await hook();
        } catch (err) {
          logger.error({ err }, "shutdown hook failed");
        }
      }
      await metrics.close();
      logger.info("stopped");
    },
    logger,
  });
  installProcessHandlers();

  return {
    name,
    config,
    logger,
    metrics,
    server,
    async start(address) {
      const port = await server.listen(address);
      const metricsPort = await metrics.listen(config.RECSYS_METRICS_PORT);
      logger.info({ metricsPort }, "metrics listening");
      return port;
    },
    ready() {
      isReady = true;
      if (faulted) {
        logger.error({ reason: faulted }, "loaded, but health stays NOT_SERVING after a fault");
        return;
      }
      server.setServing(true);
      logger.info("ready: health SERVING");
      if (onStageThread) parentPort?.postMessage({ type: "ready", paths: localPaths() });
    },
    notReady(reason) {
      if (!isReady) return;
      isReady = false;
      server.setServing(false);
      logger.warn({ reason }, "not ready: health NOT_SERVING");
    },
    fault(reason) {
      faulted ??= reason;
      server.setServing(false);
      logger.error(
        { reason },
        "fault: health NOT_SERVING until an operator repairs it and restarts the service",
      );
    },
    isReady: () => isReady,
    requireReady() {
      if (!isReady) throw new RpcError(status.UNAVAILABLE, `${name} is still loading`);
    },
    onShutdown(fn) {
      shutdownHooks.push(fn);
    },
  };
}
