/**
 * k6-style thresholds: `metric{tag:value,...}: ["agg op number", ...]`.
 *
 *   metric               aggregations      unit
 *   grpc_req_duration    p(N) avg med min max   ms, from the scheduled send time
 *   grpc_answer_duration p(N) avg med min max   the same, OK answers only
 *   grpc_refusal_duration p(N) avg med min max  the same, RESOURCE_EXHAUSTED refusals only
 *   grpc_req_failed      rate              share of calls with a non-OK status
 *   checks               rate              share of passed checks
 *   degraded             rate              share of answers that flag any degradation
 *   fallbacks            rate              share of answers where a stage fell back (timeout/failure)
 *   grpc_reqs            count, rate       calls finished (rate: per second of run time)
 *   goodput              count, rate       OK answers with every check passed and no degradation
 *   dropped_iterations   count, rate       sends skipped because maxVUs were in flight
 *   late_sends           count, rate       sends that left later than the late threshold
 */
import type { Series, Tags } from "./stats.js";

export const METRICS = [
  "grpc_req_duration",
  "grpc_answer_duration",
  "grpc_refusal_duration",
  "goodput",
  "grpc_req_failed",
  "checks",
  "degraded",
  "fallbacks",
  "grpc_reqs",
  "dropped_iterations",
  "late_sends",
] as const;
export type MetricName = (typeof METRICS)[number];

export interface ThresholdKey {
  readonly metric: MetricName;
  readonly filter: Tags;
  /** Canonical text, used as the series key. */
  readonly text: string;
}

type Op = "<" | "<=" | ">" | ">=" | "==" | "!=";

export interface ThresholdExpr {
  readonly agg: "p" | "avg" | "med" | "min" | "max" | "rate" | "count";
  readonly percentile?: number;
  readonly op: Op;
  readonly value: number;
  readonly text: string;
}

export interface ThresholdResult {
  readonly key: string;
  readonly expr: string;
  readonly actual: number;
  readonly ok: boolean;
}

export function parseThresholdKey(text: string): ThresholdKey {
  const m = /^\s*([a-z_]+)\s*(?:\{([^}]*)\})?\s*$/.exec(text);
  if (!m) throw new Error(`threshold "${text}": expected metric or metric{tag:value,...}`);
  const metric = m[1] as MetricName;
  if (!(METRICS as readonly string[]).includes(metric)) {
    throw new Error(`threshold "${text}": unknown metric ${metric} (known: ${METRICS.join(", ")})`);
  }
  const filter: Record<string, string> = {};
  for (const part of (m[2] ?? "").split(",")) {
    if (part.trim() === "") continue;
    const i = part.indexOf(":");
    if (i <= 0) throw new Error(`threshold "${text}": tag filter "${part}" is not tag:value`);
    filter[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  const keys = Object.keys(filter).sort();
  const canonical = keys.length ? `${metric}{${keys.map((k) => `${k}:${filter[k]}`).join(",")}}` : metric;
  return { metric, filter, text: canonical };
}

const EXPR =
  /^\s*(p\(\s*(\d+(?:\.\d+)?)\s*\)|avg|med|min|max|rate|count)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;

export function parseThresholdExpr(metric: MetricName, text: string): ThresholdExpr {
  const m = EXPR.exec(text);
  if (!m)
    throw new Error(`threshold ${metric}: cannot parse "${text}" (e.g. p(99)<100, rate>0.999, count==0)`);
  const agg = (m[1]!.startsWith("p(") ? "p" : m[1]) as ThresholdExpr["agg"];
  const allowed: Record<MetricName, readonly string[]> = {
    grpc_req_duration: ["p", "avg", "med", "min", "max"],
    grpc_answer_duration: ["p", "avg", "med", "min", "max"],
    grpc_refusal_duration: ["p", "avg", "med", "min", "max"],
    goodput: ["count", "rate"],
    grpc_req_failed: ["rate"],
    checks: ["rate"],
    degraded: ["rate"],
    fallbacks: ["rate"],
    grpc_reqs: ["count", "rate"],
    dropped_iterations: ["count", "rate"],
    late_sends: ["count", "rate"],
  };
  if (!allowed[metric].includes(agg)) {
    throw new Error(`threshold ${metric}: "${agg}" does not apply (use ${allowed[metric].join(", ")})`);
  }
  const percentile = agg === "p" ? Number(m[2]) : undefined;
  if (percentile !== undefined && (percentile < 0 || percentile > 100)) {
    throw new Error(`threshold ${metric}: percentile ${percentile} out of 0..100`);
  }
  return { agg, percentile, op: m[3] as Op, value: Number(m[4]), text: text.trim() };
}

/** The value an expression compares, from a series; `runSeconds` turns counts into rates. */
export function aggregate(metric: MetricName, expr: ThresholdExpr, s: Series, runSeconds: number): number {
  const ratio = (num: number, den: number) => (den === 0 ? 0 : num / den);
  switch (metric) {
    case "grpc_req_duration":
    case "grpc_answer_duration":
    case "grpc_refusal_duration": {
      const h =
        metric === "grpc_answer_duration"
          ? s.answered
          : metric === "grpc_refusal_duration"
            ? s.refused
            : s.latency;
      if (h.totalCount === 0) return 0;
      if (expr.agg === "p") return h.getValueAtPercentile(expr.percentile!) / 1000;
      if (expr.agg === "med") return h.getValueAtPercentile(50) / 1000;
      if (expr.agg === "avg") return h.mean / 1000;
      if (expr.agg === "min") return h.minNonZeroValue / 1000;
      return h.maxValue / 1000;
    }
    case "grpc_req_failed":
      return ratio(s.failed, s.requests);
    case "checks":
      // No check ran at all is a failure, not a perfect score.
      return s.checksPassed + s.checksFailed === 0
        ? 0
        : ratio(s.checksPassed, s.checksPassed + s.checksFailed);
    case "degraded":
      return ratio(s.degraded, s.requests);
    case "fallbacks":
      return ratio(s.fellBack, s.requests);
    case "grpc_reqs":
      return expr.agg === "count" ? s.requests : ratio(s.requests, runSeconds);
    case "goodput":
      return expr.agg === "count" ? s.good : ratio(s.good, runSeconds);
    case "dropped_iterations":
      return expr.agg === "count" ? s.dropped : ratio(s.dropped, runSeconds);
    case "late_sends":
      return expr.agg === "count" ? s.late : ratio(s.late, runSeconds);
  }
}

export function compare(actual: number, op: Op, value: number): boolean {
  switch (op) {
    case "<":
      return actual < value;
    case "<=":
      return actual <= value;
    case ">":
      return actual > value;
    case ">=":
      return actual >= value;
    case "==":
      return actual === value;
    case "!=":
      return actual !== value;
  }
}
