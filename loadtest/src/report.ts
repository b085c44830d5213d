/**
 * Output of a run: a JSON summary (everything measured), a table on stdout,
 * and one self-contained HTML page (inline CSS and SVG, no external assets)
 * with latency over time (per-second p50/p99) and the percentile distribution.
 */
import { readFileSync } from "node:fs";
import { cpus, freemem, totalmem } from "node:os";
import type { RunnerSelf, RunResult } from "./engine.js";
import type { MachineLoad, StackReport } from "./probe.js";
import type { Options } from "./scenario.js";
import { distribution, type LatencySummary, summarize, type TimelinePoint } from "./stats.js";

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memTotalGb: number;
  readonly memFreeGb: number;
  readonly loadAvg1m: number;
  readonly node: string;
}

export function machine(): Machine {
  let model = cpus()[0]?.model ?? "unknown";
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1]) model = m[1].trim();
  } catch {
    // not Linux
  }
  let load = 0;
  try {
    load = Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
  } catch {
    // not Linux
  }
  return {
    nproc: cpus().length,
    cpuModel: model,
    memTotalGb: +(totalmem() / 2 ** 30).toFixed(1),
    memFreeGb: +(freemem() / 2 ** 30).toFixed(1),
    loadAvg1m: load,
    node: process.version,
  };
}

export interface ScenarioSummary {
  readonly name: string;
  readonly method: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly requests: number;
  readonly ok: number;
  readonly rps: number;
  readonly codes: Readonly<Record<string, number>>;
  readonly dropped: number;
  readonly late: number;
  readonly degraded: number;
  readonly fellBack: number;
  readonly degradations: Readonly<Record<string, number>>;
  readonly checks: ReadonlyArray<{ name: string; passed: number; failed: number }>;
  /** From the scheduled send time. */
  readonly latency: LatencySummary;
  /** From the actual send time. */
  readonly service: LatencySummary;
  readonly sendLag: LatencySummary;
}

export interface MethodSummary {
  readonly method: string;
  readonly requests: number;
  readonly failed: number;
  readonly degraded: number;
  /** OK answers with every check passed and no degradation. */
  readonly good: number;
  readonly latency: LatencySummary;
  /** OK answers only, and RESOURCE_EXHAUSTED refusals only. */
  readonly answered: LatencySummary;
  readonly refused: LatencySummary;
  readonly distribution: ReadonlyArray<{ percentile: number; ms: number }>;
}

export interface RunSummary {
  readonly profile: string;
  readonly target: string;
  readonly ownStack: boolean;
  readonly startedAt: string;
  readonly machine: Machine;
  readonly params: { readonly rate: number; readonly duration: string };
  readonly plannedSeconds: number;
  readonly wallSeconds: number;
  readonly passed: boolean;
  readonly thresholds: RunResult["thresholds"];
  readonly skipped: RunResult["skipped"];
  readonly scenarios: readonly ScenarioSummary[];
  readonly methods: readonly MethodSummary[];
  readonly timeline: Readonly<Record<string, readonly TimelinePoint[]>>;
  readonly runner: RunnerSelf;
  readonly stack?: StackReport;
  /** CPU of the whole machine during the run, and how much of it was not ours. */
  readonly machineLoad?: MachineLoad;
  readonly memory?: {
    readonly samples: ReadonlyArray<{ t: number; rss: Record<string, number> }>;
    readonly growth: ReadonlyArray<{
      process: string;
      startMb: number;
      endMb: number;
      growthMb: number;
      slopeMbPerHour: number;
    }>;
  };
  readonly options: Options;
}

export function summarizeRun(
  result: RunResult,
  meta: {
    profile: string;
    target: string;
    ownStack: boolean;
    params: { rate: number; duration: string };
    options: Options;
    stack?: StackReport;
    memory?: RunSummary["memory"];
    machine?: MachineLoad;
  },
): RunSummary {
  const seconds = result.plannedMs / 1000;
  const scenarios = result.scenarios.map(
    (s): ScenarioSummary => ({
      name: s.name,
      method: s.method,
      tags: s.tags,
      requests: s.requests,
      ok: s.ok,
      rps: seconds > 0 ? s.requests / seconds : 0,
      codes: Object.fromEntries(s.codes),
      dropped: s.dropped,
      late: s.late,
      degraded: s.degraded,
      fellBack: s.fellBack,
      degradations: Object.fromEntries(s.degradations),
      checks: s.checkNames.map((name, i) => ({
        name,
        passed: s.checksPassed[i]!,
        failed: s.checksFailed[i]!,
      })),
      latency: summarize(s.latency),
      service: summarize(s.service),
      sendLag: summarize(s.sendLag),
    }),
  );
  const methods: MethodSummary[] = [];
  for (const [key, s] of result.series) {
    if (!key.startsWith("method:") || key.includes(",")) continue;
    methods.push({
      method: key.slice("method:".length),
      requests: s.requests,
      failed: s.failed,
      degraded: s.degraded,
      good: s.good,
      latency: summarize(s.latency),
      answered: summarize(s.answered),
      refused: summarize(s.refused),
      distribution: distribution(s.latency),
    });
  }
  return {
    profile: meta.profile,
    target: meta.target,
    ownStack: meta.ownStack,
    startedAt: result.startedAt,
    machine: machine(),
    params: meta.params,
    plannedSeconds: seconds,
    wallSeconds: result.wallMs / 1000,
    passed: result.thresholds.every((t) => t.ok),
    thresholds: result.thresholds,
    skipped: result.skipped,
    scenarios,
    methods,
    timeline: Object.fromEntries(result.timelines.map((t) => [t.method, t.points])),
    runner: result.runner,
    stack: meta.stack,
    machineLoad: meta.machine,
    memory: meta.memory,
    options: meta.options,
  };
}

// ---------------------------------------------------------------- text

export function fmtMs(v: number): string {
  if (!Number.isFinite(v)) return "-";
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtNum(v: number, digits = 1): string {
  return Number.isFinite(v) ? v.toFixed(digits) : "-";
}

export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function machineText(m: MachineLoad): string {
  return (
    `Machine: busy ${m.busyPercentOfCore.toFixed(0)}% of a core (of ${100 * m.cores}%), ` +
    `other processes ${m.foreignPercentOfCore.toFixed(0)}%${m.foreignPercentOfCore > 10 ? "  <-- shared machine: latencies skewed" : ""}`
  );
}

export function stackText(stack: StackReport): string {
  const out: string[] = [];
  out.push(
    "\nStages as the gateway sees them (recsys_stage_seconds; p50/p99 are bucket-interpolated like histogram_quantile):",
  );
  out.push(
    table(
      ["stage", "calls", "errors", "mean ms", "p50 ms", "p99 ms"],
      stack.stages.map((r) => [
        r.name,
        String(r.count),
        String(r.errors),
        fmtMs(r.meanMs),
        fmtMs(r.p50Ms),
        fmtMs(r.p99Ms),
      ]),
    ),
  );
  out.push("\nServer handling time per RPC (recsys_grpc_server_handling_seconds; bucket-interpolated):");
  out.push(
    table(
      ["service: method", "calls", "non-OK", "mean ms", "p50 ms", "p99 ms"],
      stack.serverHandling.map((r) => [
        r.name,
        String(r.count),
        String(r.errors),
        fmtMs(r.meanMs),
        fmtMs(r.p50Ms),
        fmtMs(r.p99Ms),
      ]),
    ),
  );
  if (stack.recallChannels.length) {
    out.push("\nRecall channels (recall's recsys_stage_seconds; bucket-interpolated):");
    out.push(
      table(
        ["channel", "calls", "mean ms", "p50 ms", "p99 ms"],
        stack.recallChannels.map((r) => [
          r.name,
          String(r.count),
          fmtMs(r.meanMs),
          fmtMs(r.p50Ms),
          fmtMs(r.p99Ms),
        ]),
      ),
    );
  }
  out.push("\nCPU of each service during the run (/proc, 10 ms ticks):");
  const totalCpu = stack.cpu.reduce((a, c) => a + c.cpuMs, 0);
  const totalPer = stack.cpu.reduce((a, c) => a + c.msPerRequest, 0);
  out.push(
    table(
      ["service", "cpu ms", "ms/request", "% of a core"],
      [
        ...stack.cpu.map((c) => [
          c.service,
          fmtNum(c.cpuMs, 0),
          fmtMs(c.msPerRequest),
          fmtNum(c.percentOfCore),
        ]),
        [
          "all services",
          fmtNum(totalCpu, 0),
          fmtMs(totalPer),
          fmtNum((100 * totalCpu) / Math.max(1, stack.wallMs)),
        ],
      ],
    ),
  );
  out.push("\nEvent loop and GC of each service during the run (default metrics of @prometheus-io/client):");
  out.push(
    table(
      ["service", "loop delay p99 ms", "loop delay max ms", "GC ms", "GC % of wall", "GC by kind"],
      stack.runtime.map((r) => [
        r.service,
        fmtMs(r.eventLoopP99Ms),
        fmtMs(r.eventLoopMaxMs),
        fmtNum(
          Object.values(r.gcMs).reduce((a, b) => a + b, 0),
          0,
        ),
        fmtNum(r.gcPercent),
        Object.entries(r.gcMs)
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(", "),
      ]),
    ),
  );
  out.push(
    stack.degradations.length
      ? `\nDegradations (recsys_degradations_total increase): ${stack.degradations.map((d) => `${d.service}/${d.kind}=${d.count}`).join(", ")}`
      : "\nDegradations (recsys_degradations_total increase): none",
  );
  return out.join("\n");
}

export function runText(s: RunSummary): string {
  const out: string[] = [];
  out.push(
    `\n== ${s.profile}: ${s.target}${s.ownStack ? " (LocalStack started by the runner)" : ""}, ` +
      `${s.plannedSeconds}s planned, ${s.machine.nproc} cores, load avg ${s.machine.loadAvg1m}`,
  );
  for (const k of s.skipped) out.push(`  skipped ${k.scenario}: ${k.reason}`);
  out.push("\nLatency from the scheduled send time (open model; HDR histograms):");
  out.push(
    table(
      [
        "scenario",
        "method",
        "reqs",
        "rps",
        "ok%",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "dropped",
        "late",
        "degraded",
        "fell back",
      ],
      s.scenarios.map((x) => [
        x.name,
        x.method,
        String(x.requests),
        fmtNum(x.rps),
        fmtNum(x.requests ? (100 * x.ok) / x.requests : 0, 2),
        fmtMs(x.latency.p50Ms),
        fmtMs(x.latency.p90Ms),
        fmtMs(x.latency.p99Ms),
        fmtMs(x.latency.p999Ms),
        fmtMs(x.latency.maxMs),
        String(x.dropped),
        String(x.late),
        String(x.degraded),
        String(x.fellBack),
      ]),
    ),
  );
  const errors = s.scenarios.filter((x) => Object.keys(x.codes).length > 0);
  for (const x of errors)
    out.push(
      `  ${x.name} errors: ${Object.entries(x.codes)
        .map(([c, n]) => `${c}=${n}`)
        .join(", ")}`,
    );
  const degr = s.scenarios.filter((x) => x.degraded > 0);
  for (const x of degr) {
    out.push(
      `  ${x.name} degradations: ${Object.entries(x.degradations)
        .map(([c, n]) => `${c}=${n}`)
        .join(", ")}`,
    );
  }
  const secs =
    s.scenarios.length && s.scenarios[0]!.rps > 0 ? s.scenarios[0]!.requests / s.scenarios[0]!.rps : 0;
  for (const m of s.methods.filter((x) => x.refused.count > 0))
    out.push(
      `  ${m.method} admission: ${m.answered.count} answered (p50 ${fmtMs(m.answered.p50Ms)}, p99 ${fmtMs(m.answered.p99Ms)} ms), ` +
        `${m.refused.count} refused with RESOURCE_EXHAUSTED (p50 ${fmtMs(m.refused.p50Ms)}, p99 ${fmtMs(m.refused.p99Ms)} ms), ` +
        `goodput ${fmtNum(secs > 0 ? m.good / secs : 0)}/s (OK, checks passed, not degraded)`,
    );
  const failedChecks = s.scenarios.flatMap((x) =>
    x.checks.filter((c) => c.failed > 0).map((c) => `${x.name}: ${c.name} ✗ ${c.failed}`),
  );
  out.push(failedChecks.length ? `\nFailed checks:\n  ${failedChecks.join("\n  ")}` : "\nChecks: all passed");
  if (s.thresholds.length) {
    out.push("\nThresholds:");
    for (const t of s.thresholds)
      out.push(`  ${t.ok ? "✓" : "✗"} ${t.key}: ${t.expr}   (actual ${fmtNum(t.actual, 4)})`);
  }
  const r = s.runner;
  out.push(
    `\nRunner: ${fmtNum(r.cpuPercentOfCore)}% of a core, ${fmtMs(r.cpuMsPerRequest)} CPU ms/request, ` +
      `send lag p99 ${fmtMs(r.sendLagP99Ms)} ms (max ${fmtMs(r.sendLagMaxMs)}), event-loop delay p99 ${fmtMs(r.eventLoopDelayP99Ms)} ms, ` +
      `RSS ${fmtNum(r.rssBytes / 1e6, 0)} MB`,
  );
  if (s.machineLoad) out.push(machineText(s.machineLoad));
  if (s.stack) out.push(stackText(s.stack));
  if (s.memory?.growth.length) {
    out.push("\nMemory (RSS) after the first 10% of the run:");
    out.push(
      table(
        ["process", "start MB", "end MB", "growth MB", "slope MB/h"],
        s.memory.growth.map((g) => [
          g.process,
          fmtNum(g.startMb),
          fmtNum(g.endMb),
          fmtNum(g.growthMb),
          fmtNum(g.slopeMbPerHour),
        ]),
      ),
    );
  }
  out.push(
    `\nResult: ${s.passed ? "PASSED" : "FAILED"} (${s.thresholds.filter((t) => !t.ok).length} threshold(s) failed)`,
  );
  return out.join("\n");
}

// ---------------------------------------------------------------- HTML

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export interface ChartLine {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly color?: string;
  readonly dashed?: boolean;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly lines: readonly ChartLine[];
  readonly xTicks?: ReadonlyArray<{ v: number; label: string }>;
  readonly hLines?: ReadonlyArray<{ y: number; label: string }>;
  readonly width?: number;
  readonly height?: number;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function niceStep(range: number, target = 6): number {
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

/** An SVG line chart with axes, grid, legend and optional horizontal reference lines. */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 320;
  const m = { l: 60, r: 20, t: 30, b: 45 };
  const pts = o.lines.flatMap((l) => l.points);
  if (pts.length === 0) return `<p><em>${esc(o.title)}: no data</em></p>`;
  const xs = pts.map((p) => p[0]);
  const ys = [...pts.map((p) => p[1]), ...(o.hLines ?? []).map((h) => h.y)];
  let x0 = Math.min(...xs, ...(o.xTicks ?? []).map((t) => t.v));
  let x1 = Math.max(...xs, ...(o.xTicks ?? []).map((t) => t.v));
  if (x1 === x0) x1 = x0 + 1;
  const yStep = niceStep(Math.max(...ys, 1e-9));
  const y1 = Math.ceil((Math.max(...ys) * 1.05) / yStep) * yStep || 1;
  const y0 = 0;
  if (x0 > 0 && x0 < (x1 - x0) * 0.05) x0 = 0;
  const X = (v: number) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">`,
  );
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" class="t">${esc(o.title)}</text>`);
  for (let v = y0; v <= y1 + 1e-9; v += yStep) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" class="g"/>`);
    parts.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${+v.toFixed(6)}</text>`);
  }
  const xTicks =
    o.xTicks ??
    (() => {
      const step = niceStep(x1 - x0, 10);
      const out: Array<{ v: number; label: string }> = [];
      for (let v = Math.ceil(x0 / step) * step; v <= x1 + 1e-9; v += step)
        out.push({ v, label: String(+v.toFixed(6)) });
      return out;
    })();
  for (const t of xTicks) {
    parts.push(`<line x1="${X(t.v)}" x2="${X(t.v)}" y1="${m.t}" y2="${H - m.b}" class="g"/>`);
    parts.push(`<text x="${X(t.v)}" y="${H - m.b + 16}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" class="a"/>`);
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" class="a"/>`);
  parts.push(`<text x="${(W + m.l) / 2}" y="${H - 8}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(
    `<text x="14" y="${(H - m.b + m.t) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(H - m.b + m.t) / 2})">${esc(o.yLabel)}</text>`,
  );
  for (const h of o.hLines ?? []) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(h.y)}" y2="${Y(h.y)}" class="h"/>`);
    parts.push(
      `<text x="${W - m.r - 4}" y="${Y(h.y) - 4}" text-anchor="end" class="hl">${esc(h.label)}</text>`,
    );
  }
  o.lines.forEach((l, i) => {
    const color = l.color ?? COLORS[i % COLORS.length]!;
    const d = l.points.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    parts.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${l.dashed ? ' stroke-dasharray="5 3"' : ""}/>`,
    );
    if (l.points.length <= 40) {
      for (const p of l.points)
        parts.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="2.5" fill="${color}"/>`);
    }
    const ly = m.t + 4 + i * 16;
    parts.push(
      `<line x1="${m.l + 10}" x2="${m.l + 26}" y1="${ly + 1.5}" y2="${ly + 1.5}" stroke="${color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="5 3"' : ""}/>`,
    );
    parts.push(`<text x="${m.l + 30}" y="${ly + 5}">${esc(l.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

/** x position of a percentile on the usual HDR plot: -log10(1 - p/100), capped at 99.999. */
export function percentileX(p: number): number {
  return -Math.log10(Math.max(1e-5, 1 - p / 100));
}

export const PERCENTILE_TICKS = [
  { v: 0, label: "0%" },
  { v: 1, label: "90%" },
  { v: 2, label: "99%" },
  { v: 3, label: "99.9%" },
  { v: 4, label: "99.99%" },
  { v: 5, label: "99.999%+" },
];

export function timelineCharts(
  timeline: Readonly<Record<string, readonly TimelinePoint[]>>,
  budgetMs?: number,
): string {
  const methods = Object.keys(timeline);
  const latency = lineChart({
    title: "Latency over time (per-second windows, from the scheduled send)",
    xLabel: "seconds since start",
    yLabel: "ms",
    lines: methods.flatMap((m, i) => [
      {
        name: `${m} p50`,
        color: COLORS[i % COLORS.length],
        points: timeline[m]!.filter((p) => p.requests).map((p) => [p.t, p.p50Ms] as const),
        dashed: true,
      },
      {
        name: `${m} p99`,
        color: COLORS[i % COLORS.length],
        points: timeline[m]!.filter((p) => p.requests).map((p) => [p.t, p.p99Ms] as const),
      },
    ]),
    hLines: budgetMs ? [{ y: budgetMs, label: `budget ${budgetMs} ms` }] : undefined,
  });
  const throughput = lineChart({
    title: "Throughput (answers per second) and errors",
    xLabel: "seconds since start",
    yLabel: "per second",
    height: 240,
    lines: methods.flatMap((m, i) => [
      {
        name: `${m} answers/s`,
        color: COLORS[i % COLORS.length],
        points: timeline[m]!.map((p) => [p.t, p.requests] as const),
      },
      ...(timeline[m]!.some((p) => p.errors)
        ? [
            {
              name: `${m} errors/s`,
              color: "#d62728",
              dashed: true,
              points: timeline[m]!.map((p) => [p.t, p.errors] as const),
            },
          ]
        : []),
    ]),
  });
  return latency + throughput;
}

export function distributionChart(methods: readonly MethodSummary[], budgetMs?: number): string {
  return lineChart({
    title: "Latency by percentile (HDR histogram, whole run)",
    xLabel: "percentile",
    yLabel: "ms",
    xTicks: PERCENTILE_TICKS,
    lines: methods
      .filter((m) => m.distribution.length)
      .map((m) => ({
        name: m.method,
        points: m.distribution.map((d) => [percentileX(d.percentile), d.ms] as const),
      })),
    hLines: budgetMs ? [{ y: budgetMs, label: `budget ${budgetMs} ms` }] : undefined,
  });
}

export function htmlTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
.ok{color:#2ca02c}.bad{color:#d62728;font-weight:bold}
svg{display:block;margin:12px 0;font-size:11px}svg text{fill:#333}svg .t{font-size:13px;font-weight:bold}
svg .g{stroke:#e6e6e6}svg .a{stroke:#555}svg .h{stroke:#d62728;stroke-dasharray:2 3}svg .hl{fill:#d62728}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
</style></head><body>
<h1>${esc(title)}</h1>
${body}
</body></html>
`;
}

export function stackHtml(stack: StackReport): string {
  const q = (rows: StackReport["stages"]) =>
    rows.map((r) => [
      r.name,
      String(r.count),
      String(r.errors),
      fmtMs(r.meanMs),
      fmtMs(r.p50Ms),
      fmtMs(r.p99Ms),
    ]);
  return [
    "<h2>Stages (gateway's recsys_stage_seconds; p50/p99 bucket-interpolated)</h2>",
    htmlTable(["stage", "calls", "errors", "mean ms", "p50 ms", "p99 ms"], q(stack.stages)),
    "<h2>Server handling per RPC (recsys_grpc_server_handling_seconds; bucket-interpolated)</h2>",
    htmlTable(["service: method", "calls", "non-OK", "mean ms", "p50 ms", "p99 ms"], q(stack.serverHandling)),
    stack.recallChannels.length
      ? `<h2>Recall channels</h2>${htmlTable(["channel", "calls", "errors", "mean ms", "p50 ms", "p99 ms"], q(stack.recallChannels))}`
      : "",
    "<h2>CPU per service</h2>",
    htmlTable(
      ["service", "cpu ms", "ms/request", "% of a core"],
      stack.cpu.map((c) => [c.service, fmtNum(c.cpuMs, 0), fmtMs(c.msPerRequest), fmtNum(c.percentOfCore)]),
    ),
    "<h2>Event loop and GC per service</h2>",
    htmlTable(
      ["service", "loop delay p99 ms", "loop delay max ms", "GC % of wall", "GC ms by kind"],
      stack.runtime.map((r) => [
        r.service,
        fmtMs(r.eventLoopP99Ms),
        fmtMs(r.eventLoopMaxMs),
        fmtNum(r.gcPercent),
        Object.entries(r.gcMs)
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(", "),
      ]),
    ),
    "<h2>Degradations</h2>",
    stack.degradations.length
      ? htmlTable(
          ["service", "kind", "count"],
          stack.degradations.map((d) => [d.service, d.kind, String(d.count)]),
        )
      : "<p>none</p>",
  ].join("\n");
}

export function runHtml(s: RunSummary, budgetMs = 100): string {
  const parts: string[] = [];
  parts.push(
    `<p>${esc(s.startedAt)} · target ${esc(s.target)}${s.ownStack ? " (LocalStack started by the runner)" : ""} · ` +
      `${s.machine.nproc} cores (${esc(s.machine.cpuModel)}), ${s.machine.memTotalGb} GiB · node ${esc(s.machine.node)} · ` +
      `load avg ${s.machine.loadAvg1m} · result <b class="${s.passed ? "ok" : "bad"}">${s.passed ? "PASSED" : "FAILED"}</b></p>`,
  );
  for (const k of s.skipped) parts.push(`<p><em>skipped ${esc(k.scenario)}: ${esc(k.reason)}</em></p>`);
  parts.push(timelineCharts(s.timeline, budgetMs));
  parts.push(distributionChart(s.methods, budgetMs));
  parts.push("<h2>Scenarios (latency from the scheduled send, ms)</h2>");
  parts.push(
    htmlTable(
      [
        "scenario",
        "method",
        "reqs",
        "rps",
        "ok",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "dropped",
        "late",
        "degraded",
        "fell back",
      ],
      s.scenarios.map((x) => [
        x.name,
        x.method,
        String(x.requests),
        fmtNum(x.rps),
        String(x.ok),
        fmtMs(x.latency.p50Ms),
        fmtMs(x.latency.p90Ms),
        fmtMs(x.latency.p99Ms),
        fmtMs(x.latency.p999Ms),
        fmtMs(x.latency.maxMs),
        String(x.dropped),
        String(x.late),
        String(x.degraded),
        String(x.fellBack),
      ]),
    ),
  );
  parts.push("<h2>Checks</h2>");
  parts.push(
    htmlTable(
      ["scenario", "check", "passed", "failed"],
      s.scenarios.flatMap((x) => x.checks.map((c) => [x.name, c.name, String(c.passed), String(c.failed)])),
    ),
  );
  if (s.thresholds.length) {
    parts.push("<h2>Thresholds</h2>");
    parts.push(
      htmlTable(
        ["metric", "expression", "actual", "result"],
        s.thresholds.map((t) => [t.key, t.expr, fmtNum(t.actual, 4), t.ok ? "pass" : "FAIL"]),
      ),
    );
  }
  const r = s.runner;
  parts.push("<h2>Runner</h2>");
  parts.push(
    htmlTable(
      [
        "% of a core",
        "CPU ms/request",
        "send lag p99 ms",
        "send lag max ms",
        "event-loop delay p99 ms",
        "RSS MB",
      ],
      [
        [
          fmtNum(r.cpuPercentOfCore),
          fmtMs(r.cpuMsPerRequest),
          fmtMs(r.sendLagP99Ms),
          fmtMs(r.sendLagMaxMs),
          fmtMs(r.eventLoopDelayP99Ms),
          fmtNum(r.rssBytes / 1e6, 0),
        ],
      ],
    ),
  );
  if (s.machineLoad) parts.push(`<p>${esc(machineText(s.machineLoad))}</p>`);
  if (s.stack) parts.push(stackHtml(s.stack));
  if (s.memory?.samples.length) {
    const names = Object.keys(s.memory.samples[0]!.rss);
    parts.push(
      lineChart({
        title: "Resident memory (RSS) per process",
        xLabel: "seconds since start",
        yLabel: "MB",
        lines: names.map((n) => ({
          name: n,
          points: s.memory!.samples.map((x) => [x.t, (x.rss[n] ?? 0) / 1e6] as const),
        })),
      }),
    );
    parts.push(
      htmlTable(
        ["process", "start MB", "end MB", "growth MB", "slope MB/h"],
        s.memory.growth.map((g) => [
          g.process,
          fmtNum(g.startMb),
          fmtNum(g.endMb),
          fmtNum(g.growthMb),
          fmtNum(g.slopeMbPerHour),
        ]),
      ),
    );
  }
  parts.push(`<h2>Options</h2><pre>${esc(JSON.stringify(s.options, null, 2))}</pre>`);
  return htmlPage(`Load test: ${s.profile}`, parts.join("\n"));
}
