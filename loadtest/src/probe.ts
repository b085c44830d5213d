/**
 * What the runner can see of a LocalStack it started: CPU time and RSS of each
 * service process (/proc), and each service's /metrics, snapshotted before
 * and after a run and diffed.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import type { LocalStack, ServiceName } from "@recsys/local";
import {
  counterDiff,
  diffHistogram,
  type HistogramData,
  histogramQuantile,
  histograms,
  type PromSample,
  parsePrometheusText,
} from "./promtext.js";

/** Machine-wide CPU counters (/proc/stat first line), in ms of CPU time. */
export interface MachineCpu {
  readonly busyMs: number;
  readonly idleMs: number;
}

export function machineCpu(): MachineCpu | undefined {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest is already in user)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    return { busyMs: (user + nice + system + irq + softirq + steal) * 10, idleMs: (idle + iowait) * 10 };
  } catch {
    return undefined;
  }
}

/**
 * CPU used on the whole machine during a run, and the part no process of
 * ours used: other work on a shared machine skews every latency number, so
 * a run says how much of it there was.
 */
export interface MachineLoad {
  readonly busyPercentOfCore: number;
  /** Busy time not spent in the services or the runner (or the echo server), % of one core. */
  readonly foreignPercentOfCore: number;
  readonly cores: number;
}

export function machineLoad(
  before: MachineCpu | undefined,
  after: MachineCpu | undefined,
  wallMs: number,
  oursMs: number,
): MachineLoad | undefined {
  if (!before || !after || wallMs <= 0) return undefined;
  const busy = after.busyMs - before.busyMs;
  return {
    busyPercentOfCore: (100 * busy) / wallMs,
    foreignPercentOfCore: Math.max(0, (100 * (busy - oursMs)) / wallMs),
    cores: cpus().length,
  };
}

export interface StackSnapshot {
  readonly atMs: number;
  /** The services the stack runs (e.g. no stream service in embedded mode). */
  readonly services: readonly ServiceName[];
  /** The services that own a process, with a label naming what runs in it (see LocalStack layouts). */
  readonly processes: ReadonlyArray<{ service: ServiceName; label: string }>;
  /** Per process (keyed by its owning service). */
  readonly cpuMs: Readonly<Partial<Record<ServiceName, number>>>;
  readonly rssBytes: Readonly<Partial<Record<ServiceName, number>>>;
  readonly metrics: Readonly<Partial<Record<ServiceName, readonly PromSample[]>>>;
}

async function scrape(port: number): Promise<PromSample[]> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return res.ok ? parsePrometheusText(await res.text()) : [];
  } catch {
    return [];
  }
}

export async function snapshot(stack: LocalStack): Promise<StackSnapshot> {
  const services = stack.services;
  const metrics = await Promise.all(services.map((s) => scrape(stack.metricsPort(s))));
  const cpuMs: Partial<Record<ServiceName, number>> = {};
  const rssBytes: Partial<Record<ServiceName, number>> = {};
  const processes = stack.processes.map((s) => ({ service: s, label: stack.processLabel(s) }));
  for (const { service: s } of processes) {
    cpuMs[s] = safe(() => stack.cpuTimeMs(s));
    rssBytes[s] = safe(() => stack.rssBytes(s));
  }
  return {
    atMs: performance.now(),
    services,
    processes,
    cpuMs,
    rssBytes,
    metrics: Object.fromEntries(services.map((s, i) => [s, metrics[i]!])),
  };
}

/** /proc reads of a process that has exited throw: NaN instead (the report shows "-"). */
function safe(read: () => number): number {
  try {
    return read();
  } catch {
    return Number.NaN;
  }
}

export interface QuantileRow {
  readonly name: string;
  readonly count: number;
  readonly errors: number;
  readonly meanMs: number;
  /** Bucket-interpolated, like histogram_quantile. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface StackReport {
  /** Gateway's recsys_stage_seconds by stage: the gateway's view of each stage (call + hop). */
  readonly stages: readonly QuantileRow[];
  /** recsys_grpc_server_handling_seconds of each service's own RPCs (status OK and not). */
  readonly serverHandling: readonly QuantileRow[];
  /** recall's per-channel recsys_stage_seconds (recall.<channel>). */
  readonly recallChannels: readonly QuantileRow[];
  /** CPU ms per request (the requests passed in) and % of one core, per service. */
  readonly cpu: ReadonlyArray<{
    service: string;
    cpuMs: number;
    msPerRequest: number;
    percentOfCore: number;
  }>;
  /** recsys_degradations_total increase, by service and kind. */
  readonly degradations: ReadonlyArray<{ service: string; kind: string; count: number }>;
  readonly rssBytes: ReadonlyArray<{ service: string; before: number; after: number }>;
  /**
   * Each service's event loop and GC over the run, from the metrics client's default
   * metrics: event-loop delay p99/max (the client resets them at each scrape,
   * so the "after" scrape covers the run; its 10 ms sampling interval is taken
   * off) and GC pause time by kind (nodejs_gc_duration_seconds, diffed).
   */
  readonly runtime: ReadonlyArray<{
    service: string;
    eventLoopP99Ms: number;
    eventLoopMaxMs: number;
    gcMs: Readonly<Record<string, number>>;
    gcPercent: number;
  }>;
  readonly wallMs: number;
}

const PROM_CLIENT_LOOP_RESOLUTION_S = 0.01;

function gauge(samples: readonly PromSample[], name: string): number {
  const s = samples.find((x) => x.name === name);
  return s ? s.value : Number.NaN;
}

const FUNNEL_STAGES = ["user_state", "recall", "prerank", "rank", "rerank"];

function row(name: string, h: HistogramData, errors = 0): QuantileRow {
  return {
    name,
    count: h.count,
    errors,
    meanMs: h.count > 0 ? (1000 * h.sum) / h.count : Number.NaN,
    p50Ms: 1000 * histogramQuantile(0.5, h),
    p99Ms: 1000 * histogramQuantile(0.99, h),
  };
}

function diffGrouped(
  before: readonly PromSample[],
  after: readonly PromSample[],
  name: string,
  groupBy: (l: Readonly<Record<string, string>>) => string | undefined,
): Map<string, HistogramData> {
  const b = histograms(before, name, groupBy);
  const out = new Map<string, HistogramData>();
  for (const [k, h] of histograms(after, name, groupBy)) {
    const d = diffHistogram(h, b.get(k));
    if (d.count > 0) out.set(k, d);
  }
  return out;
}

export function compareSnapshots(before: StackSnapshot, after: StackSnapshot, requests: number): StackReport {
  const wallMs = after.atMs - before.atMs;
  const services = after.services.filter((s) => before.services.includes(s));
  const m = (snap: StackSnapshot, s: ServiceName): readonly PromSample[] => snap.metrics[s] ?? [];
  const gwBefore = m(before, "gateway");
  const gwAfter = m(after, "gateway");
  const all = diffGrouped(gwBefore, gwAfter, "recsys_stage_seconds", (l) => l.stage);
  const errs = diffGrouped(gwBefore, gwAfter, "recsys_stage_seconds", (l) =>
    l.outcome === "error" ? l.stage : undefined,
  );
  const stages = FUNNEL_STAGES.filter((s) => all.has(s)).map((s) =>
    row(s, all.get(s)!, errs.get(s)?.count ?? 0),
  );
  for (const [s, h] of all) if (!FUNNEL_STAGES.includes(s)) stages.push(row(s, h, errs.get(s)?.count ?? 0));

  const serverHandling: QuantileRow[] = [];
  for (const service of services) {
    const b = m(before, service);
    const a = m(after, service);
    const byMethod = diffGrouped(b, a, "recsys_grpc_server_handling_seconds", (l) => l.method);
    const errors = diffGrouped(b, a, "recsys_grpc_server_handling_seconds", (l) =>
      l.code === "OK" ? undefined : l.method,
    );
    for (const [method, h] of byMethod)
      serverHandling.push(row(`${service}: ${method}`, h, errors.get(method)?.count ?? 0));
  }
  const channels = diffGrouped(
    m(before, "recall"),
    m(after, "recall"),
    "recsys_stage_seconds",
    (l) => l.stage,
  );
  const recallChannels = [...channels].map(([k, h]) => row(k, h));

  // CPU, memory, event loop and GC belong to processes (the same for every service in one).
  const processes = after.processes.filter((p) => services.includes(p.service));
  const cpu = processes.map(({ service, label }) => {
    const cpuMs = (after.cpuMs[service] ?? 0) - (before.cpuMs[service] ?? 0);
    return {
      service: label,
      cpuMs,
      msPerRequest: requests > 0 ? cpuMs / requests : Number.NaN,
      percentOfCore: (100 * cpuMs) / Math.max(1, wallMs),
    };
  });
  const degradations: Array<{ service: string; kind: string; count: number }> = [];
  for (const service of services) {
    for (const [kind, count] of counterDiff(
      m(before, service),
      m(after, service),
      "recsys_degradations_total",
      "kind",
    )) {
      degradations.push({ service, kind, count });
    }
  }
  const rssBytes = processes.map(({ service, label }) => ({
    service: label,
    before: before.rssBytes[service] ?? 0,
    after: after.rssBytes[service] ?? 0,
  }));
  const runtime = processes.map(({ service, label }) => {
    const a = m(after, service);
    const gc = diffGrouped(m(before, service), a, "nodejs_gc_duration_seconds", (l) => l.kind);
    const gcMs: Record<string, number> = {};
    let gcTotal = 0;
    for (const [kind, h] of gc) {
      gcMs[kind] = 1000 * h.sum;
      gcTotal += 1000 * h.sum;
    }
    const lag = (n: string) => 1000 * Math.max(0, gauge(a, n) - PROM_CLIENT_LOOP_RESOLUTION_S);
    return {
      service: label,
      eventLoopP99Ms: lag("nodejs_eventloop_lag_p99_seconds"),
      eventLoopMaxMs: lag("nodejs_eventloop_lag_max_seconds"),
      gcMs,
      gcPercent: (100 * gcTotal) / Math.max(1, wallMs),
    };
  });
  return { stages, serverHandling, recallChannels, cpu, degradations, rssBytes, runtime, wallMs };
}

/** RSS of every service over time, and growth judged on the part after `settleMs`. */
export class MemorySampler {
  readonly samples: Array<{ t: number; rss: Record<string, number> }> = [];
  private timer?: NodeJS.Timeout;
  private t0 = 0;

  constructor(
    private readonly stack: LocalStack,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.t0 = performance.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  private sample(): void {
    const rss: Record<string, number> = {};
    for (const s of this.stack.processes)
      rss[this.stack.processLabel(s)] = safe(() => this.stack.rssBytes(s));
    rss.runner = process.memoryUsage().rss;
    this.samples.push({ t: (performance.now() - this.t0) / 1000, rss });
  }

  /**
   * Per process: RSS at the first sample after `settleFraction` of the run and at the end, and
   * the least-squares slope over that part, in MB per hour.
   */
  growth(
    settleFraction = 0.1,
  ): Array<{ process: string; startMb: number; endMb: number; growthMb: number; slopeMbPerHour: number }> {
    if (this.samples.length < 2) return [];
    const tEnd = this.samples[this.samples.length - 1]!.t;
    const part = this.samples.filter((s) => s.t >= tEnd * settleFraction);
    const names = Object.keys(this.samples[0]!.rss);
    return names.map((name) => {
      const xs = part.map((s) => s.t / 3600);
      const ys = part.map((s) => (s.rss[name] ?? 0) / 1e6);
      const n = xs.length;
      const mx = xs.reduce((a, b) => a + b, 0) / n;
      const my = ys.reduce((a, b) => a + b, 0) / n;
      let sxy = 0;
      let sxx = 0;
      for (let i = 0; i < n; i++) {
        sxy += (xs[i]! - mx) * (ys[i]! - my);
        sxx += (xs[i]! - mx) ** 2;
      }
      const startMb = ys[0] ?? 0;
      const endMb = ys[n - 1] ?? 0;
      return {
        process: name,
        startMb,
        endMb,
        growthMb: endMb - startMb,
        slopeMbPerHour: sxx > 0 ? sxy / sxx : 0,
      };
    });
  }
}
