/**
 * k6-style scenario options, run by our own runner (k6 itself is AGPL and not
 * allowed here). A scenario file exports a profile whose `options()` returns
 * the same shape as a k6 script's `export const options`:
 *
 *   scenarios: {
 *     recommend: { executor: "constant-arrival-rate", rate: 45, timeUnit: "1s", duration: "60s",
 *                  maxVUs: 200, exec: "recommend", params: { count: 20 } },
 *   },
 *   thresholds: { "grpc_req_duration{method:Recommend}": ["p(99)<100"], checks: ["rate>0.999"] },
 *
 * Differences from k6, on purpose:
 *   - `exec` names one of the runner's built-in request functions (see EXECS),
 *     and `params` configures it; there is no JS VM per VU.
 *   - Arrival-rate executors are an open model driven by one timer: `maxVUs`
 *     caps requests in flight for the scenario (a send that finds the cap full
 *     is counted in `dropped_iterations`), it does not pre-allocate anything.
 *   - `rate` may be fractional, and `arrival: "poisson"` draws exponential gaps
 *     instead of k6's evenly spaced ones.
 *   - `requires: "catalog"` skips the scenario, with a message, when the target
 *     does not serve recsys.catalog.v1.CatalogService.
 */
import { parseDuration } from "./duration.js";

export const EXECS = ["recommend", "feedback", "catalogUpsert", "echo"] as const;
export type ExecName = (typeof EXECS)[number];

export const CAPABILITIES = ["catalog"] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface ExecParams {
  /** Recommend: items asked for (default 20). */
  readonly count?: number;
  /** Recommend: send a free-text query built from item titles and genres. */
  readonly query?: boolean;
  /** Recommend: product surface; empty means the gateway's default. */
  readonly scene?: string;
  /** Feedback: events per Report, drawn uniformly from [minEvents, maxEvents] (default 1-5). */
  readonly minEvents?: number;
  readonly maxEvents?: number;
  /** Catalog: items per UpsertItems (default 1-3). */
  readonly maxItems?: number;
  /** Echo: payload bytes (default 16). */
  readonly payloadBytes?: number;
}

interface ScenarioBase {
  readonly exec: ExecName;
  readonly params?: ExecParams;
  /** Added to every sample's tags; `scenario` and `method` are always set by the runner. */
  readonly tags?: Readonly<Record<string, string>>;
  /** Offset from the start of the run (default 0s). */
  readonly startTime?: string;
  /** Per-request deadline, like k6 grpc's `timeout` (default 2s). */
  readonly timeout?: string;
  readonly requires?: Capability;
}

export interface ConstantArrivalRate extends ScenarioBase {
  readonly executor: "constant-arrival-rate";
  /** Iterations per timeUnit. */
  readonly rate: number;
  readonly timeUnit?: string;
  readonly duration: string;
  /** Accepted for k6 compatibility; the runner allocates nothing up front. */
  readonly preAllocatedVUs?: number;
  /** Cap on requests in flight (default 1000). */
  readonly maxVUs?: number;
  readonly arrival?: "uniform" | "poisson";
}

export interface RampingStage {
  /** Rate (per timeUnit) reached at the end of the stage, linearly from the previous one. */
  readonly target: number;
  readonly duration: string;
}

export interface RampingArrivalRate extends ScenarioBase {
  readonly executor: "ramping-arrival-rate";
  readonly startRate?: number;
  readonly timeUnit?: string;
  readonly stages: readonly RampingStage[];
  readonly preAllocatedVUs?: number;
  readonly maxVUs?: number;
  readonly arrival?: "uniform" | "poisson";
}

/** Closed model: `vus` loops, each sends, waits for the answer, sleeps, repeats. */
export interface ConstantVus extends ScenarioBase {
  readonly executor: "constant-vus";
  readonly vus: number;
  readonly duration: string;
  /** Pause between a VU's iterations (default 0). */
  readonly sleep?: string;
}

export type Scenario = ConstantArrivalRate | RampingArrivalRate | ConstantVus;

export interface Options {
  readonly scenarios: Readonly<Record<string, Scenario>>;
  /** metric{tag:value,...} -> expressions such as "p(99)<100", "rate>0.999", "count==0". */
  readonly thresholds?: Readonly<Record<string, readonly string[]>>;
}

/** What the CLI may override in a profile. */
export interface ProfileParams {
  /** Recommend requests per second (all Recommend scenarios together). */
  readonly rate: number;
  readonly duration: string;
}

export interface StressPlan {
  readonly startRate: number;
  readonly stepRate: number;
  readonly maxRate: number;
  readonly stepDuration: string;
  /** Extra bisection steps between the last rate that held and the first that broke. */
  readonly refineSteps: number;
  /** Idle time between steps so queues drain. */
  readonly pause: string;
  /** A step holds when Recommend p99 <= p99Ms, error rate <= maxErrorRate, nothing dropped, checks >= 99.9%. */
  readonly p99Ms: number;
  readonly maxErrorRate: number;
  /** Optional: also break when more than this share of answers had a stage fallback. */
  readonly maxFallbackRate?: number;
}

export interface BenchPlan {
  /** Low-load phase for the overhead ratio. */
  readonly lowLoadRate: number;
  readonly lowLoadDuration: string;
  /** Bare grpc-js echo reference, driven at the bench rate. */
  readonly echoDuration: string;
}

export interface Profile {
  readonly name: string;
  readonly description: string;
  readonly defaults: ProfileParams;
  /** Unrecorded run at the same options before the measured one (default none). */
  readonly warmup?: string;
  /** How often the RSS of each service is sampled when the runner owns the stack (default 5s). */
  readonly sampleEvery?: string;
  options(params: ProfileParams): Options;
  readonly stress?: StressPlan;
  readonly bench?: BenchPlan;
}

export function defineProfile(profile: Profile): Profile {
  return profile;
}

/** Throws with the offending field's path when options are malformed. */
export function validateOptions(options: Options): void {
  const names = Object.keys(options.scenarios);
  if (names.length === 0) throw new Error("options.scenarios: at least one scenario is needed");
  for (const name of names) {
    const s = options.scenarios[name]!;
    const at = `scenarios.${name}`;
    if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`${at}: names are lower_snake_case`);
    if (!(EXECS as readonly string[]).includes(s.exec))
      throw new Error(`${at}.exec: one of ${EXECS.join(", ")}`);
    if (s.requires !== undefined && !(CAPABILITIES as readonly string[]).includes(s.requires)) {
      throw new Error(`${at}.requires: one of ${CAPABILITIES.join(", ")}`);
    }
    if (s.startTime !== undefined) parseDuration(s.startTime, `${at}.startTime`);
    if (s.timeout !== undefined && parseDuration(s.timeout, `${at}.timeout`) <= 0)
      throw new Error(`${at}.timeout: > 0`);
    switch (s.executor) {
      case "constant-arrival-rate":
        nonNegative(s.rate, `${at}.rate`);
        parseDuration(s.duration, `${at}.duration`);
        timeUnit(s.timeUnit, at);
        if (s.maxVUs !== undefined) positiveInt(s.maxVUs, `${at}.maxVUs`);
        break;
      case "ramping-arrival-rate":
        nonNegative(s.startRate ?? 0, `${at}.startRate`);
        timeUnit(s.timeUnit, at);
        if (s.stages.length === 0) throw new Error(`${at}.stages: at least one stage`);
        s.stages.forEach((st, i) => {
          nonNegative(st.target, `${at}.stages[${i}].target`);
          parseDuration(st.duration, `${at}.stages[${i}].duration`);
        });
        if (s.maxVUs !== undefined) positiveInt(s.maxVUs, `${at}.maxVUs`);
        break;
      case "constant-vus":
        positiveInt(s.vus, `${at}.vus`);
        parseDuration(s.duration, `${at}.duration`);
        if (s.sleep !== undefined) parseDuration(s.sleep, `${at}.sleep`);
        break;
      default:
        throw new Error(`${at}.executor: one of constant-arrival-rate, ramping-arrival-rate, constant-vus`);
    }
  }
}

function nonNegative(v: number, what: string): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new Error(`${what}: a number >= 0, got ${v}`);
}

function positiveInt(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what}: an integer >= 1, got ${v}`);
}

function timeUnit(v: string | undefined, at: string): void {
  if (v !== undefined && parseDuration(v, `${at}.timeUnit`) <= 0) throw new Error(`${at}.timeUnit: > 0`);
}

/** Planned length of a scenario, start offset included (ms). */
export function scenarioEndMs(s: Scenario): number {
  const start = s.startTime ? parseDuration(s.startTime) : 0;
  if (s.executor === "ramping-arrival-rate")
    return start + s.stages.reduce((a, st) => a + parseDuration(st.duration), 0);
  return start + parseDuration(s.duration);
}
