/**
 * Starts the funnel's processes on one machine: the four stage services and
 * the catalog service first, then the gateway, each waited on until
 * grpc.health.v1 says SERVING.
 * Used by `npm start`, the end-to-end tests and the benchmarks, so all three
 * run exactly the same processes.
 *
 * Modes: "embedded" (default) needs nothing outside the repository: the event
 * bus is a log under <stateDir>/bus and the gateway runs the stream processor
 * in-process. "full" points every service at a Kafka broker and Redis (see
 * scripts/kafka, scripts/redis) and adds the stream service, started first so
 * it imports the dataset's histories into Redis before the gateway reads them.
 *
 * Layouts: "processes" (default) runs each service in its own process, as
 * on Kubernetes. "colocated" runs the gateway and the four stages in one
 * process (colocated.ts): the gateway calls its stages in-process (the
 * `in-process` client target: same handlers, no gRPC hop), and each stage
 * still answers gRPC on its own port. It is for one machine with few cores,
 * where five hops per Recommend cost more CPU than the stages themselves
 * (docs/benchmarks.md). `colocate` names the stages the gateway's process
 * hosts (default all four); a stage left out runs in its own process and is
 * called over gRPC, e.g. recall alone so that two busy processes use two
 * cores. Catalog, stream and online trainer keep their own processes in
 * both layouts.
 *
 * The online trainer (services/online-trainer) is optional (`onlineTrainer`),
 * started last: it reads the samples and feedback topics (embedded mode: the
 * gateway's logs, read-only) and runs the Python trainer's online update.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { checkHealth } from "./health.js";

export const STAGES = ["recall", "prerank", "rank", "rerank"] as const;
export const SERVICES = [...STAGES, "gateway", "stream", "catalog", "online-trainer"] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface StackOptions {
  /** Repository root (holds services/). */
  readonly rootDir: string;
  /** Gateway port; stages use the next four ports, stream +5, catalog +6, online trainer +7, metrics base+100... */
  readonly basePort?: number;
  /** Default: $RECSYS_DATA_DIR, else data/ml-latest-small (relative paths: to rootDir). */
  readonly dataDir?: string;
  /** Default: $RECSYS_MODEL_STORE, else var/models. */
  readonly modelStore?: string;
  readonly logDir?: string;
  /** Extra environment for every service, or per service. */
  readonly env?: Record<string, string>;
  readonly serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Extra node flags per service, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] (not allowed in NODE_OPTIONS). */
  readonly nodeArgs?: Partial<Record<ServiceName, string[]>>;
  readonly startTimeoutMs?: number;
  readonly onProgress?: (message: string) => void;
  /** Where the services keep their state: embedded bus, spill logs, trending snapshot. Default <rootDir>/var. */
  readonly stateDir?: string;
  /** "full": Kafka + Redis + the stream service (needs `kafkaBrokers` and `redisUrl`). */
  readonly mode?: "embedded" | "full";
  readonly kafkaBrokers?: string;
  readonly redisUrl?: string;
  /** Prefix of topic names and consumer groups, and of Redis keys (isolates runs that share a broker). */
  readonly namespace?: string;
  /** Run the catalog service (item upserts; needs the text encoder). Default true. */
  readonly catalog?: boolean;
  /**
   * Run the online trainer (fine-tunes and publishes ranking models from the
   * samples topic; needs the Python trainer in <rootDir>/.venv). Default false.
   */
  readonly onlineTrainer?: boolean;
  /** "processes" (default): one process per service; "colocated": gateway and stages in one. */
  readonly layout?: StackLayout;
  /** Colocated layout: the stages the gateway's process hosts (default all four); the others run alone. */
  readonly colocate?: readonly (typeof STAGES)[number][];
  /**
   * Colocated layout: hosted stages that run on a worker thread of their own
   * (their own event loop, so a second core works for the funnel) rather than
   * on the gateway's thread. Default none.
   */
  readonly threads?: readonly (typeof STAGES)[number][];
}

export type StackLayout = "processes" | "colocated";

/** What colocated.ts runs: each service's entry point with its own environment, in order. */
export type ColocatedPlan = Array<{
  service: string;
  entry: string;
  env: Record<string, string>;
  thread?: boolean;
}>;

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
}

export class LocalStack {
  private readonly procs = new Map<ServiceName, Running>();
  readonly basePort: number;
  readonly logDir: string;

  private constructor(private readonly options: StackOptions) {
    this.basePort = options.basePort ?? 50051;
    this.logDir = resolve(options.logDir ?? join(options.rootDir, "var", "log"));
    mkdirSync(this.logDir, { recursive: true });
  }

  static async start(options: StackOptions): Promise<LocalStack> {
    if (options.mode === "full" && (!options.kafkaBrokers || !options.redisUrl))
      throw new Error(
        "full mode needs kafkaBrokers and redisUrl (scripts/kafka/start.sh, scripts/redis/start.sh)",
      );
    const stack = new LocalStack(options);
    try {
      if (stack.full) await stack.startService("stream");
      const first = [
        ...STAGES.filter((s) => stack.hostOf(s) === s),
        ...(stack.withCatalog ? (["catalog"] as const) : []),
      ];
      await Promise.all(first.map((s) => stack.startService(s)));
      await stack.startService("gateway");
      if (stack.withOnlineTrainer) await stack.startService("online-trainer");
    } catch (err) {
      await stack.stopAll();
      throw err;
    }
    return stack;
  }

  get full(): boolean {
    return this.options.mode === "full";
  }

  get colocated(): boolean {
    return this.options.layout === "colocated";
  }

  /** The service whose process runs `service` (itself unless co-located). */
  hostOf(service: ServiceName): ServiceName {
    if (!this.colocated) return service;
    return (this.options.colocate ?? STAGES).includes(service as never) ? "gateway" : service;
  }

  /** The services that own a process: where CPU and memory are read. */
  get processes(): ServiceName[] {
    return this.services.filter((s) => this.hostOf(s) === s);
  }

  /** The other services that run in `service`'s process. */
  private hostedBy(service: ServiceName): ServiceName[] {
    return this.services.filter((s) => s !== service && this.hostOf(s) === service);
  }

  /** e.g. "gateway" or, co-located, "gateway+recall+prerank+rank+rerank". */
  processLabel(service: ServiceName): string {
    return [service, ...this.hostedBy(service)].join("+");
  }

  get withCatalog(): boolean {
    return this.options.catalog ?? true;
  }

  get withOnlineTrainer(): boolean {
    return this.options.onlineTrainer ?? false;
  }

  /** The services this stack runs. */
  get services(): ServiceName[] {
    return SERVICES.filter(
      (s) =>
        (s !== "stream" || this.full) &&
        (s !== "catalog" || this.withCatalog) &&
        (s !== "online-trainer" || this.withOnlineTrainer),
    );
  }

  port(service: ServiceName): number {
    if (service === "gateway") return this.basePort;
    if (service === "stream") return this.basePort + 5;
    if (service === "catalog") return this.basePort + 6;
    if (service === "online-trainer") return this.basePort + 7;
    return this.basePort + 1 + STAGES.indexOf(service);
  }

  metricsPort(service: ServiceName): number {
    return this.basePort + 100 + SERVICES.indexOf(service);
  }

  target(service: ServiceName): string {
    return `127.0.0.1:${this.port(service)}`;
  }

  get gatewayTarget(): string {
    return this.target("gateway");
  }

  pid(service: ServiceName): number | undefined {
    return this.procs.get(this.hostOf(service))?.child.pid;
  }

  logFile(service: ServiceName): string {
    return join(this.logDir, `${service}.log`);
  }

  get stateDir(): string {
    return resolve(this.options.stateDir ?? join(this.options.rootDir, "var"));
  }

  private envFor(service: ServiceName): NodeJS.ProcessEnv {
    return { ...process.env, ...this.ownEnv(service) };
  }

  /** What `service` is given on top of this process's environment. */
  private ownEnv(service: ServiceName): Record<string, string> {
    const o = this.options;
    const state = this.stateDir;
    const ns = o.namespace ?? "";
    const online: Record<string, string> = {
      RECSYS_BUS_DIR: join(state, "bus"),
      RECSYS_SPILL_DIR: join(state, "spill", service),
      RECSYS_TRENDING_FILE: join(state, "stream", "trending.json"),
      RECSYS_BUS_TOPIC_PREFIX: ns,
      RECSYS_REDIS_PREFIX: `${ns || "recsys:"}`,
      RECSYS_STREAM_ADDR: this.target("stream"),
      RECSYS_CATALOG_ADDR: this.target("catalog"),
      RECSYS_CATALOG_STORE_DIR: join(state, "catalog"),
      RECSYS_ONLINE_TRAINER_ADDR: this.target("online-trainer"),
      RECSYS_ONLINE_DIR: join(state, "online"),
      RECSYS_KAFKA_BROKERS: this.full ? o.kafkaBrokers! : "",
      RECSYS_REDIS_URL: this.full ? o.redisUrl! : "",
    };
    const stageTarget = (s: ServiceName) => (this.hostOf(s) === "gateway" ? "in-process" : this.target(s));
    return {
      // The dataset and model store that scripts/setup.sh trained: the same
      // RECSYS_DATA_DIR / RECSYS_MODEL_STORE it honours (relative to the root).
      RECSYS_DATA_DIR: resolve(o.rootDir, o.dataDir ?? process.env.RECSYS_DATA_DIR ?? "data/ml-latest-small"),
      RECSYS_MODEL_STORE: resolve(o.rootDir, o.modelStore ?? process.env.RECSYS_MODEL_STORE ?? "var/models"),
      RECSYS_METRICS_PORT: String(this.metricsPort(service)),
      RECSYS_GATEWAY_ADDR: this.target("gateway"),
      RECSYS_RECALL_ADDR: this.target("recall"),
      RECSYS_PRERANK_ADDR: this.target("prerank"),
      RECSYS_RANK_ADDR: this.target("rank"),
      RECSYS_RERANK_ADDR: this.target("rerank"),
      RECSYS_RECALL_TARGET: stageTarget("recall"),
      RECSYS_PRERANK_TARGET: stageTarget("prerank"),
      RECSYS_RANK_TARGET: stageTarget("rank"),
      RECSYS_RERANK_TARGET: stageTarget("rerank"),
      ...online,
      ...o.env,
      ...o.serviceEnv?.[service],
    };
  }

  /** Starts (or restarts) one service and waits until it reports SERVING. */
  async startService(service: ServiceName): Promise<void> {
    if (this.procs.has(service)) throw new Error(`${service} is already running`);
    // The child writes its log file itself, so it never depends on this process's pipes.
    const logFd = openSync(this.logFile(service), "a");
    const entryOf = (s: ServiceName) => join(this.options.rootDir, "services", s, "dist", "main.js");
    const hosted = this.hostedBy(service);
    let entry = entryOf(service);
    let env: NodeJS.ProcessEnv = this.envFor(service);
    if (hosted.length > 0) {
      // One process for several services: the launcher sets each one's own
      // environment before importing its entry point.
      entry = join(import.meta.dirname, "colocated.js");
      const plan: ColocatedPlan = [...hosted, service].map((s) => ({
        service: s,
        entry: entryOf(s),
        env: this.ownEnv(s),
        thread: (this.options.threads ?? []).includes(s as never),
      }));
      env = { ...process.env, RECSYS_COLOCATED_PLAN: JSON.stringify(plan) };
    }
    const args = [...(this.options.nodeArgs?.[service] ?? []), entry];
    const child = spawn(process.execPath, args, {
      env: { ...env, RECSYS_EXIT_WITH_PARENT: "1" },
      stdio: ["ignore", logFd, logFd],
    });
    closeSync(logFd);
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
    this.procs.set(service, { child, exited });
    this.options.onProgress?.(`starting ${service} on ${this.target(service)}`);
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 60_000);
    let exitCode: number | null | undefined;
    void exited.then((code) => {
      exitCode = code;
    });
    const waitFor = [...hosted, service];
    for (;;) {
      if (exitCode !== undefined) {
        this.procs.delete(service);
        throw new Error(
          `${service} exited with code ${exitCode} during start-up; see ${this.logFile(service)}:\n${tail(this.logFile(service))}`,
        );
      }
      const health = await Promise.all(waitFor.map((s) => checkHealth(this.target(s))));
      if (health.every((h) => h === "SERVING")) break;
      if (Date.now() > deadline)
        throw new Error(`${service} not SERVING after start timeout; see ${this.logFile(service)}`);
      await sleep(100);
    }
    this.options.onProgress?.(`${service} ready`);
  }

  /** Sends `signal` and waits for the process to exit. */
  async stopService(service: ServiceName, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const running = this.procs.get(service);
    if (!running) return;
    if (this.hostOf(service) !== service) return; // stops with its host process
    running.child.kill(signal);
    const timeout = setTimeout(() => running.child.kill("SIGKILL"), 10_000);
    await running.exited;
    clearTimeout(timeout);
    this.procs.delete(service);
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) a service: a hung process, not a dead one. */
  pause(service: ServiceName, paused: boolean): void {
    if (this.hostOf(service) !== service)
      throw new Error(`${service} runs inside the ${this.hostOf(service)} process (colocated layout)`);
    const child = this.procs.get(service)?.child;
    if (!child) throw new Error(`${service} is not running`);
    child.kill(paused ? "SIGSTOP" : "SIGCONT");
  }

  async stopAll(): Promise<void> {
    // The online trainer first (an update in progress is killed and retried after the next
    // start), then the gateway so it stops sending traffic, then the stages, then the stream.
    await this.stopService("online-trainer");
    await this.stopService("gateway");
    await Promise.all([...STAGES, "catalog" as const].map((s) => this.stopService(s)));
    await this.stopService("stream");
  }

  /** Total user+system CPU time of a service so far, in ms (Linux /proc). */
  cpuTimeMs(service: ServiceName): number {
    const pid = this.pid(service);
    if (!pid) return 0;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  }

  /** Resident memory of a service, bytes. */
  rssBytes(service: ServiceName): number {
    const pid = this.pid(service);
    if (!pid) return 0;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
