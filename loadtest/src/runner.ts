/**
 * Runs a profile end to end: target (an existing one, or a LocalStack it
 * starts), traffic data, warm-up, the measured run(s), stack observation,
 * and the JSON/text/HTML outputs under loadtest/results/<timestamp>-<profile>/.
 *
 * Three shapes of profile: plain (smoke, nominal, soak), stress (rate steps
 * until the budget breaks) and bench (fixed rate plus the overhead analysis).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { LocalStack, SERVICES, type StackLayout } from "@recsys/local";
import { parseDuration } from "./duration.js";
import { spawnEchoServer } from "./echo.js";
import { type LiveView, type RunResult, run } from "./engine.js";
import {
  compareSnapshots,
  type MachineLoad,
  MemorySampler,
  machineCpu,
  machineLoad,
  type QuantileRow,
  type StackReport,
  snapshot,
} from "./probe.js";
import {
  fmtMs,
  htmlPage,
  htmlTable,
  lineChart,
  machine,
  type RunSummary,
  runHtml,
  runText,
  summarizeRun,
  table,
  timelineCharts,
} from "./report.js";
import {
  type Capability,
  defineProfile,
  type Options,
  type Profile,
  type ProfileParams,
  validateOptions,
} from "./scenario.js";
import { seededRandom } from "./schedule.js";
import { summarize, type TimelinePoint } from "./stats.js";
import { Channels, type ExecContext, probeCatalog, RecentRecommendations, TrafficData } from "./workload.js";

export const PROFILES = ["smoke", "nominal", "stress", "soak", "bench", "overload"] as const;

/**
 * A built-in profile by name, a compiled scenario module by path (its default
 * export), or a JSON file holding k6-style `{ scenarios, thresholds }` options
 * (used as they are: --rate and --duration do not apply to it).
 */
export async function loadProfile(nameOrPath: string): Promise<Profile> {
  if (nameOrPath.endsWith(".json")) {
    const options = JSON.parse(readFileSync(resolve(nameOrPath), "utf8")) as Options;
    validateOptions(options);
    const name = basename(nameOrPath, ".json");
    return defineProfile({
      name,
      description: `options from ${nameOrPath}`,
      defaults: { rate: 0, duration: "0s" },
      options: () => options,
    });
  }
  const builtIn = (PROFILES as readonly string[]).includes(nameOrPath);
  if (!builtIn && !/[./\\]/.test(nameOrPath)) {
    throw new Error(
      `unknown profile "${nameOrPath}" (built in: ${PROFILES.join(", ")}; or a path to a .js or .json scenario file)`,
    );
  }
  const url = builtIn
    ? new URL(`../scenarios/${nameOrPath}.js`, import.meta.url)
    : pathToFileURL(resolve(nameOrPath));
  const mod = (await import(url.href)) as { default?: Profile };
  if (!mod.default || typeof mod.default.options !== "function") {
    throw new Error(
      `${nameOrPath}: not a profile (expected one of ${PROFILES.join(", ")}, a module whose default export is defineProfile(...), or a .json options file)`,
    );
  }
  return mod.default;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

/** A base port whose gRPC (base..base+9) and metrics (base+100..base+109) ports are all free. */
export async function freeBasePort(start: number): Promise<number> {
  for (let base = start; base < start + 2_000; base += 10) {
    const ports = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((i) => [base + i, base + 100 + i]);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no free base port from ${start}`);
}

export interface SessionOptions {
  readonly rootDir: string;
  /** host:port of a running gateway; without it (and without `stack`) a LocalStack is started. */
  readonly target?: string;
  /** A LocalStack someone else started and will stop (tests); CPU and metrics are read from it. */
  readonly stack?: LocalStack;
  readonly basePort?: number;
  readonly dataDir?: string;
  readonly seed?: number;
  readonly catalog?: "auto" | "on" | "off";
  readonly catalogTarget?: string;
  /** Extra environment for the services of a LocalStack started here. */
  readonly stackEnv?: Record<string, string>;
  /** Layout of a LocalStack started here (default: a process per service). */
  readonly layout?: StackLayout;
  /** Colocated layout: the stages the gateway's process hosts. */
  readonly colocate?: readonly string[];
  readonly threads?: readonly string[];
  /** Run the services of a LocalStack started here with --cpu-prof, profiles written to this directory. */
  readonly cpuProfDir?: string;
  readonly resultsDir?: string;
  readonly log?: (line: string) => void;
  /** Progress line every N seconds during runs (0: none). */
  readonly progressEvery?: number;
}

export class Session {
  private constructor(
    readonly opts: SessionOptions,
    readonly stack: LocalStack | undefined,
    private readonly ownsStack: boolean,
    readonly target: string,
    readonly ctx: ExecContext,
    readonly channels: Channels,
    readonly capabilities: Map<Capability, { ok: boolean; why: string }>,
    private readonly stateDir: string | undefined,
  ) {}

  static async open(o: SessionOptions): Promise<Session> {
    const log = o.log ?? (() => {});
    let stack = o.stack;
    let owns = false;
    let stateDir: string | undefined;
    if (!stack && !o.target) {
      // A free base port by default: a stack already listening there would answer the health
      // checks of ours, and the numbers would be someone else's.
      const basePort = o.basePort ?? (await freeBasePort(58151));
      log(`starting LocalStack (base port ${basePort}) ...`);
      // Its own state (event bus, catalog store, spill logs): load-test feedback and
      // synthetic items never land in the developer's var/.
      stateDir = mkdtempSync(join(tmpdir(), "recsys-loadtest-state-"));
      const cpuProf = o.cpuProfDir;
      stack = await LocalStack.start({
        rootDir: o.rootDir,
        basePort,
        dataDir: o.dataDir,
        logDir: join(o.rootDir, "var", "log", "loadtest"),
        stateDir,
        env: o.stackEnv,
        layout: o.layout,
        colocate: o.colocate as never,
        threads: o.threads as never,
        nodeArgs: cpuProf
          ? Object.fromEntries(
              // default file names: each thread (worker threads too) writes a profile of its own
              SERVICES.map((s) => [s, ["--cpu-prof", `--cpu-prof-dir=${join(cpuProf, s)}`]]),
            )
          : undefined,
      }).catch((err: unknown) => {
        rmSync(stateDir!, { recursive: true, force: true });
        throw err;
      });
      owns = true;
      log(
        `LocalStack ready (${stack.processes.map((s) => stack!.processLabel(s)).join(", ")}), gateway ${stack.gatewayTarget}; logs in var/log/loadtest/`,
      );
    }
    const channels = new Channels();
    try {
      const target = o.target ?? stack!.gatewayTarget;
      const seed = o.seed ?? 1;
      const data = await TrafficData.load(
        o.dataDir ?? join(o.rootDir, "data", "ml-latest-small"),
        seededRandom(seed),
      );
      await channels.waitForReady(target, 10_000);
      // CatalogService: a separate service in the LocalStack; on a --target, assume the same address.
      const catalogTarget =
        o.catalogTarget ?? (stack?.services.includes("catalog") ? stack.target("catalog") : target);
      const ctx: ExecContext = {
        data,
        recent: new RecentRecommendations(),
        channels,
        target,
        catalogTarget,
        runId: `${Date.now().toString(36)}${seed}`,
      };
      const capabilities = new Map<Capability, { ok: boolean; why: string }>();
      const mode = o.catalog ?? "auto";
      if (mode === "off") capabilities.set("catalog", { ok: false, why: "turned off with --catalog off" });
      else if (mode === "on") capabilities.set("catalog", { ok: true, why: "forced on with --catalog on" });
      else capabilities.set("catalog", await probeCatalog(channels, catalogTarget));
      return new Session(o, stack, owns, target, ctx, channels, capabilities, stateDir);
    } catch (err) {
      channels.close();
      if (owns) await stack?.stopAll();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
      throw err;
    }
  }

  log(line: string): void {
    this.opts.log?.(line);
  }

  async close(): Promise<void> {
    this.channels.close();
    if (this.ownsStack) await this.stack?.stopAll();
    if (this.stateDir) rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** A fresh results directory, loadtest/results/<timestamp>-<profile>/. */
  resultsDir(profile: string): string {
    const stamp = new Date()
      .toISOString()
      .replace(/\.\d+Z$/, "Z")
      .replace(/:/g, "-");
    const base = this.opts.resultsDir ?? join(this.opts.rootDir, "loadtest", "results");
    const dir = join(isAbsolute(base) ? base : resolve(base), `${stamp}-${profile}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** One engine run with optional stack observation. */
  async measure(
    options: Options,
    observe: boolean,
    sampleEveryMs = 0,
    ctx: ExecContext = this.ctx,
    extraPids: readonly number[] = [],
  ): Promise<Measured> {
    const before = observe && this.stack ? await snapshot(this.stack) : undefined;
    const ours = () => {
      let ms = 0;
      if (this.stack) {
        for (const s of this.stack.processes) {
          try {
            ms += this.stack.cpuTimeMs(s);
          } catch {
            // exited: its CPU is lost to the accounting
          }
        }
      }
      for (const pid of extraPids) ms += procCpuMs(pid) || 0;
      const u = process.cpuUsage();
      return ms + (u.user + u.system) / 1000;
    };
    const machine0 = machineCpu();
    const ours0 = ours();
    const t0 = performance.now();
    const sampler =
      sampleEveryMs > 0 && this.stack ? new MemorySampler(this.stack, sampleEveryMs) : undefined;
    sampler?.start();
    const every = this.opts.progressEvery ?? 5;
    const result = await run({
      options,
      ctx,
      capabilities: this.capabilities,
      onSecond: every > 0 ? (t, live) => t % every === 0 && this.log(progressLine(t, live)) : undefined,
    });
    sampler?.stop();
    const machine = machineLoad(machine0, machineCpu(), performance.now() - t0, ours() - ours0);
    if (machine && machine.foreignPercentOfCore > 10) {
      this.log(
        `warning: other processes used ${machine.foreignPercentOfCore.toFixed(0)}% of a core during this run ` +
          `(machine busy ${machine.busyPercentOfCore.toFixed(0)}% of ${100 * machine.cores}%): latencies are skewed`,
      );
    }
    const after = before && this.stack ? await snapshot(this.stack) : undefined;
    const requests = result.series.get("")!.requests;
    const stack = before && after ? compareSnapshots(before, after, requests) : undefined;
    const memory = sampler ? { samples: sampler.samples, growth: sampler.growth() } : undefined;
    return { result, stack, memory, machine };
  }
}

interface Measured {
  readonly result: RunResult;
  readonly stack?: StackReport;
  readonly memory?: RunSummary["memory"];
  readonly machine?: MachineLoad;
}

function progressLine(t: number, live: LiveView): string {
  const parts = live.timelines.map((tl) => {
    const p = tl.points[tl.points.length - 1];
    if (!p) return `${tl.method} -`;
    return `${tl.method} ${p.requests}/s p50 ${fmtMs(p.p50Ms)} p99 ${fmtMs(p.p99Ms)} ms${p.errors ? ` errors ${p.errors}` : ""}`;
  });
  return `[${String(t).padStart(4)}s] ${parts.join(" | ")} | in flight ${live.inFlight}`;
}

function onlyScenarios(options: Options, names: readonly string[] | undefined): Options {
  if (!names?.length) return options;
  const unknown = names.filter((n) => !(n in options.scenarios));
  if (unknown.length)
    throw new Error(
      `--scenarios: unknown ${unknown.join(", ")} (have ${Object.keys(options.scenarios).join(", ")})`,
    );
  return { ...options, scenarios: Object.fromEntries(names.map((n) => [n, options.scenarios[n]!])) };
}

async function warmUp(
  session: Session,
  profile: Profile,
  params: ProfileParams,
  scenarios?: readonly string[],
): Promise<void> {
  if (!profile.warmup) return;
  session.log(`warm-up: ${profile.warmup} at the same rate (not recorded)`);
  const options = onlyScenarios(profile.options({ ...params, duration: profile.warmup }), scenarios);
  await run({
    options: { scenarios: options.scenarios },
    ctx: session.ctx,
    capabilities: session.capabilities,
  });
}

export interface Outcome {
  readonly passed: boolean;
  readonly dir: string;
  readonly text: string;
  readonly summary: unknown;
}

function write(dir: string, summary: unknown, text: string, html: string): void {
  writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summary, jsonReplacer, 2)}\n`);
  writeFileSync(join(dir, "summary.txt"), `${text}\n`);
  writeFileSync(join(dir, "report.html"), html);
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) return null;
  if (value instanceof Map) return Object.fromEntries(value);
  return value;
}

// ---------------------------------------------------------------- plain

export async function runPlain(
  session: Session,
  profile: Profile,
  params: ProfileParams,
  scenarios?: readonly string[],
): Promise<Outcome> {
  const options = onlyScenarios(profile.options(params), scenarios);
  await warmUp(session, profile, params, scenarios);
  session.log(`${profile.name}: ${profile.description}`);
  for (const [name, cap] of session.capabilities)
    session.log(`capability ${name}: ${cap.ok ? "on" : "off"} (${cap.why})`);
  const m = await session.measure(options, true, parseDuration(profile.sampleEvery ?? "5s"));
  const summary = summarizeRun(m.result, {
    profile: profile.name,
    target: session.target,
    ownStack: session.stack !== undefined,
    params,
    options,
    stack: m.stack,
    memory: m.memory,
    machine: m.machine,
  });
  const text = runText(summary);
  const dir = session.resultsDir(profile.name);
  write(dir, summary, text, runHtml(summary));
  return { passed: summary.passed, dir, text, summary };
}

// ---------------------------------------------------------------- stress

export interface StressStep {
  readonly rate: number;
  readonly held: boolean;
  readonly broke: readonly string[];
  readonly recommend: ReturnType<typeof summarize>;
  readonly recommendRps: number;
  readonly requests: number;
  readonly errors: number;
  readonly errorCodes: Readonly<Record<string, number>>;
  /** Share of Recommend answers flagging any degradation / a stage fallback. */
  readonly degradedRate: number;
  readonly fallbackRate: number;
  readonly degradations: Readonly<Record<string, number>>;
  readonly dropped: number;
  readonly late: number;
  readonly checksRate: number;
  readonly runnerCpuPercent: number;
  readonly servicesCpuPercent?: number;
  /** CPU of processes that are not ours during the step (% of a core): other work on the machine. */
  readonly otherCpuPercent?: number;
  readonly stack?: StackReport;
  readonly timeline: readonly TimelinePoint[];
}

export interface StressOverrides {
  readonly stepRate?: number;
  readonly maxRate?: number;
}

const STEP_HEADERS = [
  "rate/s",
  "answered/s",
  "p50 ms",
  "p99 ms",
  "max ms",
  "errors",
  "dropped",
  "late",
  "degraded",
  "fell back",
  "runner %core",
  "services %core",
  "other %core",
  "verdict",
] as const;

function stepRow(s: StressStep): string[] {
  return [
    String(s.rate),
    s.recommendRps.toFixed(1),
    fmtMs(s.recommend.p50Ms),
    fmtMs(s.recommend.p99Ms),
    fmtMs(s.recommend.maxMs),
    String(s.errors),
    String(s.dropped),
    String(s.late),
    `${(100 * s.degradedRate).toFixed(1)}%`,
    `${(100 * s.fallbackRate).toFixed(1)}%`,
    s.runnerCpuPercent.toFixed(0),
    s.servicesCpuPercent?.toFixed(0) ?? "-",
    s.otherCpuPercent?.toFixed(0) ?? "-",
    s.held ? "held" : `broke: ${s.broke.join("; ")}`,
  ];
}

export async function runStress(
  session: Session,
  profile: Profile,
  params: ProfileParams,
  overrides: StressOverrides = {},
  scenarios?: readonly string[],
): Promise<Outcome> {
  const plan = profile.stress!;
  const stepMs = parseDuration(params.duration);
  const stepRate = overrides.stepRate ?? plan.stepRate;
  const maxRate = overrides.maxRate ?? plan.maxRate;
  const criteria =
    `Recommend p99 <= ${plan.p99Ms} ms, error rate <= ${plan.maxErrorRate}, no dropped sends, checks >= 99.9%` +
    (plan.maxFallbackRate !== undefined ? `, stage fallbacks <= ${100 * plan.maxFallbackRate}%` : "");
  await warmUp(session, profile, params, scenarios);
  session.log(`${profile.name}: ${profile.description}`);
  session.log(
    `steps of ${params.duration} from ${params.rate}/s by ${stepRate}/s up to ${maxRate}/s; a step holds when ${criteria}`,
  );
  const steps: StressStep[] = [];
  const runStep = async (rate: number): Promise<StressStep> => {
    session.log(`-- step: ${rate} Recommend/s for ${params.duration}`);
    const options = onlyScenarios(profile.options({ rate, duration: params.duration }), scenarios);
    const m = await session.measure(options, true);
    const rec = m.result.series.get("method:Recommend");
    if (!rec) throw new Error("stress needs a Recommend scenario in the profile");
    const all = m.result.series.get("")!;
    const recSummary = summarize(rec.latency);
    const codes: Record<string, number> = {};
    const degradations: Record<string, number> = {};
    for (const s of m.result.scenarios) {
      for (const [c, n] of s.codes) codes[c] = (codes[c] ?? 0) + n;
      for (const [d, n] of s.degradations) degradations[d] = (degradations[d] ?? 0) + n;
    }
    const errors = all.failed;
    const degradedRate = rec.requests ? rec.degraded / rec.requests : 0;
    const fallbackRate = rec.requests ? rec.fellBack / rec.requests : 0;
    const checksRate = all.checksPassed / Math.max(1, all.checksPassed + all.checksFailed);
    const broke: string[] = [];
    if (rec.requests === 0) broke.push("no Recommend answers");
    if (recSummary.p99Ms > plan.p99Ms) broke.push(`p99 ${fmtMs(recSummary.p99Ms)} ms > ${plan.p99Ms} ms`);
    if (errors / Math.max(1, all.requests) > plan.maxErrorRate) {
      const byCode = Object.entries(codes).map(([c, n]) => `${c}=${n}`);
      broke.push(`errors ${errors} (${byCode.join(", ")})`);
    }
    if (all.dropped > 0) broke.push(`${all.dropped} sends dropped (maxVUs in flight)`);
    if (plan.maxFallbackRate !== undefined && fallbackRate > plan.maxFallbackRate) {
      broke.push(`${(100 * fallbackRate).toFixed(1)}% fell back > ${100 * plan.maxFallbackRate}%`);
    }
    if (checksRate < 0.999) broke.push(`checks ${(100 * checksRate).toFixed(2)}% < 99.9%`);
    const step: StressStep = {
      rate,
      held: broke.length === 0,
      broke,
      recommend: recSummary,
      recommendRps: rec.requests / (stepMs / 1000),
      requests: all.requests,
      errors,
      errorCodes: codes,
      degradedRate,
      fallbackRate,
      degradations,
      dropped: all.dropped,
      late: all.late,
      checksRate,
      runnerCpuPercent: m.result.runner.cpuPercentOfCore,
      servicesCpuPercent: m.stack ? m.stack.cpu.reduce((a, c) => a + c.percentOfCore, 0) : undefined,
      otherCpuPercent: m.machine?.foreignPercentOfCore,
      stack: m.stack,
      timeline: m.result.timelines.find((t) => t.method === "Recommend")?.points ?? [],
    };
    session.log(
      `   ${step.held ? "held" : "BROKE"}: p50 ${fmtMs(recSummary.p50Ms)} p99 ${fmtMs(recSummary.p99Ms)} ms, ` +
        `${step.recommendRps.toFixed(1)} Recommend/s answered, errors ${errors}, ` +
        `fell back ${(100 * fallbackRate).toFixed(1)}% (degraded ${(100 * degradedRate).toFixed(1)}%), ` +
        `runner ${step.runnerCpuPercent.toFixed(0)}% / services ${step.servicesCpuPercent?.toFixed(0) ?? "?"}% of a core` +
        (broke.length ? ` — ${broke.join("; ")}` : ""),
    );
    steps.push(step);
    await sleep(parseDuration(plan.pause));
    return step;
  };

  let held: number | undefined;
  let broken: number | undefined;
  for (let rate = params.rate; rate <= maxRate; rate += stepRate) {
    const s = await runStep(rate);
    if (s.held) held = rate;
    else {
      broken = rate;
      break;
    }
  }
  for (let i = 0; i < plan.refineSteps && broken !== undefined; i++) {
    const lo = held ?? 0;
    const mid = Math.round((lo + broken) / 2);
    if (mid <= lo || mid >= broken) break;
    const s = await runStep(mid);
    if (s.held) held = mid;
    else broken = mid;
  }

  const sorted = [...steps].sort((a, b) => a.rate - b.rate);
  const verdict =
    held === undefined
      ? `no step held (the first, ${params.rate}/s, broke)`
      : broken === undefined
        ? `every step held up to ${held}/s (raise --max-rate to find the limit)`
        : `highest Recommend rate that held: ${held}/s (first that broke: ${broken}/s)`;
  // Also say how far the funnel went without stage fallbacks, from the same steps.
  const clean = sorted.filter((s) => s.held && s.fallbackRate <= 0.01).pop();
  const cleanNote = clean
    ? `highest held rate with <= 1% stage fallbacks: ${clean.rate}/s`
    : "no held step had <= 1% stage fallbacks";
  const text = [
    `\n== stress: ${session.target}, steps of ${params.duration}; a step holds when ${criteria}`,
    table(STEP_HEADERS, sorted.map(stepRow)),
    `\nResult: ${verdict}; ${cleanNote}`,
  ].join("\n");
  const summary = {
    profile: profile.name,
    target: session.target,
    ownStack: session.stack !== undefined,
    startedAt: new Date().toISOString(),
    machine: machine(),
    criteria,
    plan: { ...plan, startRate: params.rate, stepRate, maxRate, stepDuration: params.duration },
    highestHeldRate: held ?? null,
    firstBrokenRate: broken ?? null,
    highestHeldRateWithoutFallbacks: clean?.rate ?? null,
    verdict,
    steps: sorted.map(({ timeline: _t, ...s }) => s),
    timelines: Object.fromEntries(steps.map((s) => [String(s.rate), s.timeline])),
  };
  // Latency over the whole stress run: steps laid end to end in the order they ran.
  let offset = 0;
  const stitched: TimelinePoint[] = [];
  for (const s of steps) {
    for (const p of s.timeline) stitched.push({ ...p, t: p.t + offset });
    offset += Math.ceil(stepMs / 1000) + 1;
  }
  const html = htmlPage(
    `Stress: ${verdict}`,
    [
      `<p>${summary.startedAt} · ${session.target} · ${summary.machine.nproc} cores (${summary.machine.cpuModel}) · ` +
        `a step holds when ${criteria} · ${cleanNote}</p>`,
      lineChart({
        title: "Recommend latency by offered rate (from the scheduled send)",
        xLabel: "Recommend requests per second offered",
        yLabel: "ms",
        lines: [
          { name: "p50", points: sorted.map((s) => [s.rate, s.recommend.p50Ms] as const), dashed: true },
          { name: "p99", points: sorted.map((s) => [s.rate, s.recommend.p99Ms] as const) },
        ],
        hLines: [{ y: plan.p99Ms, label: `p99 budget ${plan.p99Ms} ms` }],
      }),
      lineChart({
        title: "Share of Recommend answers with a stage fallback, and CPU",
        xLabel: "Recommend requests per second offered",
        yLabel: "% (CPU: % of one core)",
        height: 260,
        lines: [
          { name: "fell back %", points: sorted.map((s) => [s.rate, 100 * s.fallbackRate] as const) },
          {
            name: "services CPU % of a core",
            points: sorted.map((s) => [s.rate, s.servicesCpuPercent ?? 0] as const),
          },
          {
            name: "runner CPU % of a core",
            points: sorted.map((s) => [s.rate, s.runnerCpuPercent] as const),
            dashed: true,
          },
        ],
      }),
      timelineCharts({ Recommend: stitched }, plan.p99Ms),
      htmlTable(STEP_HEADERS, sorted.map(stepRow)),
    ].join("\n"),
  );
  const dir = session.resultsDir(profile.name);
  write(dir, summary, text, html);
  return { passed: held !== undefined, dir, text, summary };
}

// ---------------------------------------------------------------- bench

export interface Overhead {
  /** Client-observed Recommend latency at low load (from the scheduled send). */
  readonly endToEndMeanMs: number;
  readonly endToEndP50Ms: number;
  /** Sum over the stages of their own handler time (stage services' server handling) plus user_state. */
  readonly stageComputeMeanMs: number;
  readonly stageComputeP50Ms: number;
  readonly ratioMean: number;
  readonly ratioP50: number;
  /** Gateway's own handling of Recommend (includes its calls to the stages). */
  readonly gatewayHandlingMeanMs: number;
  /** Echo round trip p50 x the 5 gRPC hops of a Recommend (client->gateway, gateway->4 stages). */
  readonly transportFloorP50Ms: number;
  readonly parts: ReadonlyArray<{ name: string; meanMs: number; p50Ms: number }>;
}

export function overheadOf(lowLoad: RunResult, stack: StackReport, echoP50Ms: number): Overhead {
  const rec = summarize(lowLoad.series.get("method:Recommend")!.latency);
  const stageMethods: Array<[string, string]> = [
    ["recall", "RecallService/Recall"],
    ["prerank", "PrerankService/Prerank"],
    ["rank", "RankService/Rank"],
    ["rerank", "RerankService/Rerank"],
  ];
  const find = (name: string): QuantileRow | undefined => stack.serverHandling.find((r) => r.name === name);
  const parts: Array<{ name: string; meanMs: number; p50Ms: number }> = [];
  const us = stack.stages.find((s) => s.name === "user_state");
  if (us) parts.push({ name: "gateway user_state", meanMs: us.meanMs, p50Ms: us.p50Ms });
  for (const [service, method] of stageMethods) {
    const r = find(`${service}: ${method}`);
    if (r) parts.push({ name: `${service} handler`, meanMs: r.meanMs, p50Ms: r.p50Ms });
  }
  const mean = parts.reduce((a, p) => a + p.meanMs, 0);
  const p50 = parts.reduce((a, p) => a + p.p50Ms, 0);
  return {
    endToEndMeanMs: rec.meanMs,
    endToEndP50Ms: rec.p50Ms,
    stageComputeMeanMs: mean,
    stageComputeP50Ms: p50,
    ratioMean: mean > 0 ? rec.meanMs / mean : Number.NaN,
    ratioP50: p50 > 0 ? rec.p50Ms / p50 : Number.NaN,
    gatewayHandlingMeanMs: find("gateway: RecommendService/Recommend")?.meanMs ?? Number.NaN,
    transportFloorP50Ms: 5 * echoP50Ms,
    parts,
  };
}

export async function runBench(session: Session, profile: Profile, params: ProfileParams): Promise<Outcome> {
  const plan = profile.bench!;
  if (!session.stack) throw new Error("bench needs a LocalStack it can observe: run it without --target");
  const echo = await spawnEchoServer();
  try {
    await session.channels.waitForReady(echo.target, 5_000);
    const ctx: ExecContext = { ...session.ctx, echoTarget: echo.target };
    await warmUp(session, profile, params);

    session.log(`bench: Recommend at ${params.rate}/s for ${params.duration}`);
    const options = profile.options(params);
    const main = await session.measure(options, true);

    session.log(`bench: low load, ${plan.lowLoadRate}/s for ${plan.lowLoadDuration} (overhead ratio)`);
    const lowOptions = profile.options({ rate: plan.lowLoadRate, duration: plan.lowLoadDuration });
    const low = await session.measure(lowOptions, true);

    session.log(`bench: bare grpc-js echo at ${params.rate}/s for ${plan.echoDuration} (reference)`);
    const echoOptions: Options = {
      scenarios: {
        echo: {
          executor: "constant-arrival-rate",
          rate: params.rate,
          duration: plan.echoDuration,
          exec: "echo",
          timeout: "2s",
        },
      },
    };
    const echoCpu0 = procCpuMs(echo.pid);
    const echoRun = await session.measure(echoOptions, false, 0, ctx, [echo.pid]);
    const echoCpuMs = procCpuMs(echo.pid) - echoCpu0;
    const echoLat = summarize(echoRun.result.series.get("method:Echo")!.latency);
    const echoRequests = echoRun.result.series.get("")!.requests;

    const overhead = overheadOf(low.result, low.stack!, echoLat.p50Ms);
    const mainSummary = summarizeRun(main.result, {
      profile: "bench",
      target: session.target,
      ownStack: true,
      params,
      options,
      stack: main.stack,
      machine: main.machine,
    });
    const lowSummary = summarizeRun(low.result, {
      profile: "bench-low-load",
      target: session.target,
      ownStack: true,
      params: { rate: plan.lowLoadRate, duration: plan.lowLoadDuration },
      options: lowOptions,
      stack: low.stack,
      machine: low.machine,
    });
    const echoSummary = {
      rate: params.rate,
      duration: plan.echoDuration,
      requests: echoRequests,
      failed: echoRun.result.series.get("")!.failed,
      latency: echoLat,
      serverCpuMsPerRequest: echoRequests ? echoCpuMs / echoRequests : Number.NaN,
      runnerCpuMsPerRequest: echoRun.result.runner.cpuMsPerRequest,
    };
    const text = benchText(mainSummary, lowSummary, echoSummary, overhead);
    const summary = { main: mainSummary, lowLoad: lowSummary, echo: echoSummary, overhead };
    const extra = [
      "<h2>Overhead ratio (low load)</h2>",
      htmlTable(
        ["", "mean ms", "p50 ms"],
        [
          [
            "end to end (client, from scheduled send)",
            fmtMs(overhead.endToEndMeanMs),
            fmtMs(overhead.endToEndP50Ms),
          ],
          ...overhead.parts.map((p) => [p.name, fmtMs(p.meanMs), fmtMs(p.p50Ms)]),
          ["sum of stage compute", fmtMs(overhead.stageComputeMeanMs), fmtMs(overhead.stageComputeP50Ms)],
          [
            "overhead ratio (end to end / stage compute)",
            overhead.ratioMean.toFixed(2),
            overhead.ratioP50.toFixed(2),
          ],
          ["transport floor: 5 hops x echo p50", "-", fmtMs(overhead.transportFloorP50Ms)],
        ],
      ),
      "<h2>Bare grpc-js echo (reference)</h2>",
      htmlTable(
        [
          "rate/s",
          "requests",
          "failed",
          "p50 ms",
          "p99 ms",
          "max ms",
          "server CPU ms/req",
          "runner CPU ms/req",
        ],
        [
          [
            String(echoSummary.rate),
            String(echoSummary.requests),
            String(echoSummary.failed),
            fmtMs(echoLat.p50Ms),
            fmtMs(echoLat.p99Ms),
            fmtMs(echoLat.maxMs),
            fmtMs(echoSummary.serverCpuMsPerRequest),
            fmtMs(echoSummary.runnerCpuMsPerRequest),
          ],
        ],
      ),
    ].join("\n");
    const html = runHtml(mainSummary).replace("<h2>Options</h2>", `${extra}\n<h2>Options</h2>`);
    const dir = session.resultsDir(profile.name);
    write(dir, summary, text, html);
    return { passed: mainSummary.passed, dir, text, summary };
  } finally {
    await echo.stop();
  }
}

function benchText(
  main: RunSummary,
  low: RunSummary,
  echo: {
    rate: number;
    requests: number;
    failed: number;
    latency: ReturnType<typeof summarize>;
    serverCpuMsPerRequest: number;
    runnerCpuMsPerRequest: number;
  },
  o: Overhead,
): string {
  const rec = main.methods.find((m) => m.method === "Recommend");
  const lowRec = low.methods.find((m) => m.method === "Recommend");
  const out: string[] = [runText(main)];
  out.push(
    `\n== bench summary: Recommend at ${main.params.rate}/s for ${main.params.duration}` +
      `\nend to end (client, from the scheduled send; HDR): p50 ${fmtMs(rec?.latency.p50Ms ?? Number.NaN)} ms, ` +
      `p99 ${fmtMs(rec?.latency.p99Ms ?? Number.NaN)} ms, mean ${fmtMs(rec?.latency.meanMs ?? Number.NaN)} ms, ` +
      `${rec?.requests ?? 0} requests, ${rec?.failed ?? 0} failed`,
  );
  out.push(
    `runner: ${fmtMs(main.runner.cpuMsPerRequest)} CPU ms/request (${main.runner.cpuPercentOfCore.toFixed(1)}% of a core)`,
  );
  out.push(
    `\nLow load (${low.params.rate}/s for ${low.params.duration}): Recommend p50 ${fmtMs(lowRec?.latency.p50Ms ?? Number.NaN)} ms, ` +
      `p99 ${fmtMs(lowRec?.latency.p99Ms ?? Number.NaN)} ms`,
  );
  out.push("Overhead ratio = end-to-end latency at low load / sum of the stages' own compute:");
  out.push(
    table(
      ["", "mean ms", "p50 ms"],
      [
        ["end to end (client)", fmtMs(o.endToEndMeanMs), fmtMs(o.endToEndP50Ms)],
        ...o.parts.map((p) => [`  ${p.name}`, fmtMs(p.meanMs), fmtMs(p.p50Ms)]),
        ["sum of stage compute", fmtMs(o.stageComputeMeanMs), fmtMs(o.stageComputeP50Ms)],
        ["overhead ratio", o.ratioMean.toFixed(2), o.ratioP50.toFixed(2)],
        ["gateway handling of Recommend", fmtMs(o.gatewayHandlingMeanMs), "-"],
        ["transport floor (5 hops x echo p50)", "-", fmtMs(o.transportFloorP50Ms)],
      ],
    ),
  );
  out.push(
    "(stage p50s are bucket-interpolated from Prometheus histograms, means are exact sum/count; " +
      "the p50 ratio sums per-stage medians, so read it as indicative)",
  );
  out.push(
    `\nBare grpc-js echo at ${echo.rate}/s (separate process, 16-byte payload): p50 ${fmtMs(echo.latency.p50Ms)} ms, ` +
      `p99 ${fmtMs(echo.latency.p99Ms)} ms, ${echo.requests} requests, ${echo.failed} failed; ` +
      `server ${fmtMs(echo.serverCpuMsPerRequest)} CPU ms/request, runner ${fmtMs(echo.runnerCpuMsPerRequest)} CPU ms/request`,
  );
  return out.join("\n");
}

/** user+system CPU of any process, ms (Linux /proc; USER_HZ 100). */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
