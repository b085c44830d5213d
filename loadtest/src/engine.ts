/**
 * The runner: one process, one timer, no worker threads.
 *
 * Arrival-rate scenarios are an open model. Every send time comes from the
 * scenario's rate curve (ArrivalSchedule), and a request's latency is measured
 * from that scheduled time, not from when the runner got round to sending it.
 * A slow answer therefore never delays or hides later requests (no coordinated
 * omission), and if the runner itself falls behind (timer late, event loop
 * busy) the lag shows in the latency and in `late_sends`. A scheduled send
 * that finds `maxVUs` requests of its scenario still in flight is not sent and
 * counts as a dropped iteration.
 *
 * constant-vus scenarios are the closed model, for comparison: each VU sends,
 * waits for the answer, optionally sleeps, and repeats.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { status } from "@grpc/grpc-js";
import { parseDuration } from "./duration.js";
import {
  type Capability,
  type ConstantVus,
  type Options,
  type Scenario,
  scenarioEndMs,
  validateOptions,
} from "./scenario.js";
import { ArrivalSchedule } from "./schedule.js";
import { newHistogram, ScenarioStats, Series, summarize, type Tags, Timeline } from "./stats.js";
import {
  aggregate,
  compare,
  type MetricName,
  parseThresholdExpr,
  parseThresholdKey,
  type ThresholdExpr,
  type ThresholdResult,
} from "./thresholds.js";
import { createExec, type Exec, type ExecContext } from "./workload.js";

export interface EngineInput {
  readonly options: Options;
  readonly ctx: ExecContext;
  /** Capabilities the target has; scenarios requiring others are skipped. */
  readonly capabilities: ReadonlyMap<Capability, { ok: boolean; why: string }>;
  /** A send more than this late counts in late_sends (default 10 ms). */
  readonly lateThresholdMs?: number;
  /** Called after each 1 s window is closed, with the seconds since start. */
  readonly onSecond?: (t: number, result: LiveView) => void;
}

export interface LiveView {
  readonly timelines: readonly Timeline[];
  readonly inFlight: number;
}

export interface RunnerSelf {
  readonly cpuUserMs: number;
  readonly cpuSystemMs: number;
  /** Runner CPU time / wall time of the run, in % of one core. */
  readonly cpuPercentOfCore: number;
  readonly cpuMsPerRequest: number;
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
  readonly sendLagP50Ms: number;
  readonly sendLagP99Ms: number;
  readonly sendLagMaxMs: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
}

export interface RunResult {
  readonly startedAt: string;
  /** Planned length (longest scenario), ms. */
  readonly plannedMs: number;
  /** Wall time until the last answer, ms. */
  readonly wallMs: number;
  readonly scenarios: readonly ScenarioStats[];
  readonly skipped: ReadonlyArray<{ scenario: string; reason: string }>;
  /** Aggregates by tag filter: "" (everything), "method:Recommend", and every threshold filter. */
  readonly series: ReadonlyMap<string, Series>;
  readonly timelines: readonly Timeline[];
  readonly thresholds: readonly ThresholdResult[];
  readonly runner: RunnerSelf;
}

interface ThresholdDef {
  readonly keyText: string;
  readonly metric: MetricName;
  readonly seriesKey: string;
  readonly exprs: readonly ThresholdExpr[];
}

interface Running {
  readonly name: string;
  readonly scenario: Scenario;
  readonly exec: Exec;
  readonly stats: ScenarioStats;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly schedule?: ArrivalSchedule;
  nextAt: number;
  inFlight: number;
}

export function filterKey(filter: Tags): string {
  return Object.keys(filter)
    .sort()
    .map((k) => `${k}:${filter[k]}`)
    .join(",");
}

export async function run(input: EngineInput): Promise<RunResult> {
  const { options, ctx } = input;
  validateOptions(options);
  const lateMs = input.lateThresholdMs ?? 10;

  const thresholdDefs: ThresholdDef[] = Object.entries(options.thresholds ?? {}).map(([text, exprs]) => {
    const key = parseThresholdKey(text);
    return {
      keyText: key.text,
      metric: key.metric,
      seriesKey: filterKey(key.filter),
      exprs: exprs.map((e) => parseThresholdExpr(key.metric, e)),
    };
  });

  const series = new Map<string, Series>();
  const ensureSeries = (filter: Tags) => {
    const key = filterKey(filter);
    if (!series.has(key)) series.set(key, new Series(key, filter));
  };
  ensureSeries({});
  for (const [text] of Object.entries(options.thresholds ?? {})) ensureSeries(parseThresholdKey(text).filter);

  const timelines = new Map<string, Timeline>();
  const skipped: Array<{ scenario: string; reason: string }> = [];
  const running: Running[] = [];
  for (const [name, scenario] of Object.entries(options.scenarios)) {
    if (scenario.requires) {
      const cap = input.capabilities.get(scenario.requires);
      if (!cap?.ok) {
        skipped.push({
          scenario: name,
          reason: `disabled: requires ${scenario.requires}; ${cap?.why ?? "not probed"}. It enables itself once the target serves it.`,
        });
        continue;
      }
    }
    const exec = createExec(scenario.exec, scenario.params ?? {}, ctx);
    let timeline = timelines.get(exec.method);
    if (!timeline) timelines.set(exec.method, (timeline = new Timeline(exec.method)));
    ensureSeries({ method: exec.method });
    const stats = new ScenarioStats(name, exec.method, exec.checks, scenario.tags, timeline);
    const arrival = scenario.executor !== "constant-vus";
    running.push({
      name,
      scenario,
      exec,
      stats,
      timeoutMs: parseDuration(scenario.timeout ?? "2s"),
      maxInFlight: arrival ? (scenario.maxVUs ?? 1_000) : (scenario as ConstantVus).vus,
      schedule: arrival ? ArrivalSchedule.of(scenario, ctx.data.random) : undefined,
      nextAt: 0,
      inFlight: 0,
    });
  }
  for (const r of running) r.stats.feeds = [...series.values()].filter((s) => s.matches(r.stats.tags));
  const plannedMs = Math.max(0, ...running.map((r) => scenarioEndMs(r.scenario)));

  const loopResolutionMs = 20;
  const loop = monitorEventLoopDelay({ resolution: loopResolutionMs });
  const cpu0 = process.cpuUsage();
  const startedAt = new Date().toISOString();
  const t0 = performance.now() + 2;
  let inFlight = 0;
  let vusActive = 0;
  let reportedThrow = false;
  let schedulingDone = false;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const maybeFinish = () => {
    if (schedulingDone && vusActive === 0 && inFlight === 0) finish();
  };

  const send = (r: Running, scheduled: number) => {
    const sentAt = performance.now();
    if (r.schedule) {
      if (r.inFlight >= r.maxInFlight) {
        r.stats.recordDropped();
        return;
      }
      const lag = sentAt - scheduled;
      r.stats.recordSend(lag * 1000, lag > lateMs);
    }
    r.inFlight++;
    inFlight++;
    const done = (code: number, failedChecks: number, degradations: readonly string[] | null) => {
      const end = performance.now();
      r.inFlight--;
      inFlight--;
      r.stats.recordResult((end - scheduled) * 1000, (end - sentAt) * 1000, code, failedChecks, degradations);
      if (r.schedule) maybeFinish();
      else vuNext(r);
    };
    try {
      r.exec.send(Date.now() + r.timeoutMs, done);
    } catch (err) {
      // A request that cannot even be built or serialised is a failed call, not a stopped run.
      if (!reportedThrow) process.stderr.write(`${r.name}: send failed: ${(err as Error).message}\n`);
      reportedThrow = true;
      done(status.INTERNAL, 1, null);
    }
  };

  // Open model: one timer for all arrival-rate scenarios.
  const arrivals = running.filter((r) => r.schedule);
  for (const r of arrivals) r.nextAt = t0 + r.schedule!.next();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    let soonest = Number.POSITIVE_INFINITY;
    for (const r of arrivals) {
      while (r.nextAt <= performance.now()) {
        send(r, r.nextAt);
        r.nextAt = t0 + r.schedule!.next();
      }
      if (r.nextAt < soonest) soonest = r.nextAt;
    }
    if (soonest === Number.POSITIVE_INFINITY) {
      schedulingDone = true;
      maybeFinish();
      return;
    }
    timer = setTimeout(tick, Math.max(0, soonest - performance.now()));
  };

  // Closed model.
  const vuEnd = new Map<Running, number>();
  const vuSleep = new Map<Running, number>();
  function vuNext(r: Running): void {
    const now = performance.now();
    if (now >= vuEnd.get(r)!) {
      vusActive--;
      maybeFinish();
      return;
    }
    const sleep = vuSleep.get(r)!;
    if (sleep > 0) setTimeout(() => send(r, performance.now()), sleep);
    else setImmediate(() => send(r, performance.now()));
  }
  for (const r of running) {
    if (r.schedule) continue;
    const s = r.scenario as ConstantVus;
    const start = s.startTime ? parseDuration(s.startTime) : 0;
    vuEnd.set(r, t0 + start + parseDuration(s.duration));
    vuSleep.set(r, s.sleep ? parseDuration(s.sleep) : 0);
    for (let v = 0; v < s.vus; v++) {
      vusActive++;
      setTimeout(() => send(r, performance.now()), Math.max(0, t0 + start - performance.now()));
    }
  }

  // 1 s windows for the per-second timeline.
  let second = 0;
  const live: LiveView = {
    timelines: [...timelines.values()],
    get inFlight() {
      return inFlight;
    },
  };
  const roll = () => {
    second++;
    for (const tl of timelines.values()) tl.roll(second);
    input.onSecond?.(second, live);
  };
  const secondTimer = setInterval(roll, 1_000);

  loop.enable();
  timer = setTimeout(tick, Math.max(0, t0 - performance.now()));
  if (arrivals.length === 0) schedulingDone = true;
  // Deadlines bound every call; the extra margin only guards against a lost callback.
  const maxTimeout = Math.max(0, ...running.map((r) => r.timeoutMs));
  const guard = setTimeout(() => finish(), plannedMs + maxTimeout + 10_000);
  await finished;
  clearTimeout(guard);
  clearTimeout(timer);
  clearInterval(secondTimer);
  loop.disable();
  const wallMs = performance.now() - t0;
  // The last, partial window.
  if (wallMs / 1000 > second + 0.05) {
    second++;
    for (const tl of timelines.values()) tl.roll(wallMs / 1000);
  }
  const cpu = process.cpuUsage(cpu0);

  const total = series.get("")!;
  const thresholds: ThresholdResult[] = [];
  for (const def of thresholdDefs) {
    const s = series.get(def.seriesKey)!;
    for (const e of def.exprs) {
      const actual = aggregate(def.metric, e, s, plannedMs / 1000);
      thresholds.push({ key: def.keyText, expr: e.text, actual, ok: compare(actual, e.op, e.value) });
    }
  }
  const lag = mergedSendLag(running);
  const mem = process.memoryUsage();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    startedAt,
    plannedMs,
    wallMs,
    scenarios: running.map((r) => r.stats),
    skipped,
    series,
    timelines: [...timelines.values()],
    thresholds,
    runner: {
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      cpuPercentOfCore: (100 * cpuMs) / Math.max(1, wallMs),
      cpuMsPerRequest: total.requests ? cpuMs / total.requests : 0,
      // The histogram's samples include the sampling interval itself.
      eventLoopDelayP99Ms: loop.count ? Math.max(0, loop.percentile(99) / 1e6 - loopResolutionMs) : 0,
      eventLoopDelayMaxMs: loop.count ? Math.max(0, loop.max / 1e6 - loopResolutionMs) : 0,
      sendLagP50Ms: lag.p50Ms,
      sendLagP99Ms: lag.p99Ms,
      sendLagMaxMs: lag.maxMs,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
    },
  };
}

function mergedSendLag(running: readonly Running[]): { p50Ms: number; p99Ms: number; maxMs: number } {
  const withLag = running.filter((r) => r.schedule && r.stats.sendLag.totalCount > 0);
  if (withLag.length === 0) return { p50Ms: 0, p99Ms: 0, maxMs: 0 };
  const merged = newHistogram();
  for (const r of withLag) merged.add(r.stats.sendLag);
  const s = summarize(merged);
  return { p50Ms: s.p50Ms, p99Ms: s.p99Ms, maxMs: s.maxMs };
}

export function thresholdsPassed(result: RunResult): boolean {
  return result.thresholds.every((t) => t.ok);
}
