/**
 * What the runner records. Latencies are HDR histograms in microseconds
 * (3 significant digits, up to 2 minutes), fixed size, so recording allocates
 * nothing. Samples carry tags (scenario, method, plus the scenario's own);
 * a Series aggregates every sample whose tags match its filter, which is how
 * thresholds such as `grpc_req_duration{method:Recommend}` are evaluated.
 */
import { status } from "@grpc/grpc-js";
import { build, type Histogram } from "hdr-histogram-js";

export const MAX_LATENCY_US = 120_000_000;

export function newHistogram(): Histogram {
  return build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_LATENCY_US,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
    bitBucketSize: 32,
  });
}

export function recordUs(h: Histogram, us: number): void {
  h.recordValue(us < 1 ? 1 : us > MAX_LATENCY_US ? MAX_LATENCY_US : Math.round(us));
}

export type Tags = Readonly<Record<string, string>>;

/**
 * Degradations that mean a stage's answer was replaced (timeout or failure
 * -> fallback), as opposed to flags such as `unknown_user` or a recall
 * channel that is not configured. These are the ones load makes worse.
 */
export const FALLBACK_KINDS = /_fallback$|_unavailable$|^recall_empty$|^empty_result/;

/** Aggregate of all samples whose tags match `filter` (an empty filter matches everything). */
export class Series {
  /** Latency from the scheduled send time to the answer, µs. */
  readonly latency = newHistogram();
  /** The same for OK answers only, and for RESOURCE_EXHAUSTED refusals only (admission control). */
  readonly answered = newHistogram();
  readonly refused = newHistogram();
  requests = 0;
  failed = 0;
  /** OK answers with every check passed and no degradation. */
  good = 0;
  checksPassed = 0;
  checksFailed = 0;
  degraded = 0;
  fellBack = 0;
  dropped = 0;
  late = 0;

  constructor(
    readonly key: string,
    readonly filter: Tags,
  ) {}

  matches(tags: Tags): boolean {
    for (const [k, v] of Object.entries(this.filter)) if (tags[k] !== v) return false;
    return true;
  }
}

/** One point of the per-second timeline of a method. */
export interface TimelinePoint {
  /** Seconds since the start of the run (end of the 1 s window). */
  readonly t: number;
  readonly requests: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Per-second p50/p99 of one method: one histogram, reset every second. */
export class Timeline {
  private readonly window = newHistogram();
  private errors = 0;
  readonly points: TimelinePoint[] = [];

  constructor(readonly method: string) {}

  record(us: number, ok: boolean): void {
    recordUs(this.window, us);
    if (!ok) this.errors++;
  }

  roll(t: number): void {
    const h = this.window;
    const n = h.totalCount;
    this.points.push({
      t,
      requests: n,
      errors: this.errors,
      p50Ms: n ? h.getValueAtPercentile(50) / 1000 : 0,
      p99Ms: n ? h.getValueAtPercentile(99) / 1000 : 0,
      maxMs: n ? h.maxValue / 1000 : 0,
    });
    h.reset();
    this.errors = 0;
  }
}

/** Everything recorded for one scenario. */
export class ScenarioStats {
  readonly tags: Tags;
  /** From the scheduled send time (what a user sees; includes any lag of the runner). */
  readonly latency = newHistogram();
  /** From the actual send (what the server and network took). */
  readonly service = newHistogram();
  /** Actual send minus scheduled send: the runner's own lag. */
  readonly sendLag = newHistogram();
  requests = 0;
  ok = 0;
  dropped = 0;
  late = 0;
  degraded = 0;
  /** Answers with at least one FALLBACK_KINDS degradation. */
  fellBack = 0;
  readonly codes = new Map<string, number>();
  readonly degradations = new Map<string, number>();
  readonly checksPassed: number[];
  readonly checksFailed: number[];
  /** Series (thresholds, per-method aggregates) this scenario's samples feed. */
  feeds: Series[] = [];

  constructor(
    readonly name: string,
    readonly method: string,
    readonly checkNames: readonly string[],
    extraTags: Tags | undefined,
    readonly timeline: Timeline,
  ) {
    this.tags = { ...extraTags, scenario: name, method };
    this.checksPassed = checkNames.map(() => 0);
    this.checksFailed = checkNames.map(() => 0);
  }

  recordDropped(): void {
    this.dropped++;
    for (const s of this.feeds) s.dropped++;
  }

  recordSend(lagUs: number, late: boolean): void {
    recordUs(this.sendLag, lagUs);
    if (late) {
      this.late++;
      for (const s of this.feeds) s.late++;
    }
  }

  /**
   * One finished request. `failedChecks` is a bit mask over checkNames; check 0
   * is always "status is OK", and when the call failed only that one counts.
   */
  recordResult(
    latencyUs: number,
    serviceUs: number,
    code: number,
    failedChecks: number,
    degradations: readonly string[] | null,
  ): void {
    const ok = code === status.OK;
    this.requests++;
    recordUs(this.latency, latencyUs);
    recordUs(this.service, serviceUs);
    this.timeline.record(latencyUs, ok);
    let passed = 0;
    let failed = 0;
    if (ok) {
      this.ok++;
      for (let i = 0; i < this.checkNames.length; i++) {
        if (failedChecks & (1 << i)) {
          this.checksFailed[i]!++;
          failed++;
        } else {
          this.checksPassed[i]!++;
          passed++;
        }
      }
    } else {
      const name = codeName(code);
      this.codes.set(name, (this.codes.get(name) ?? 0) + 1);
      this.checksFailed[0]!++;
      failed = 1;
    }
    const degraded = degradations !== null && degradations.length > 0;
    let fellBack = false;
    if (degraded) {
      this.degraded++;
      for (const d of degradations) {
        this.degradations.set(d, (this.degradations.get(d) ?? 0) + 1);
        if (FALLBACK_KINDS.test(d)) fellBack = true;
      }
      if (fellBack) this.fellBack++;
    }
    const good = ok && failed === 0 && !degraded;
    for (const s of this.feeds) {
      s.requests++;
      recordUs(s.latency, latencyUs);
      if (ok) recordUs(s.answered, latencyUs);
      else if (code === status.RESOURCE_EXHAUSTED) recordUs(s.refused, latencyUs);
      if (!ok) s.failed++;
      if (good) s.good++;
      s.checksPassed += passed;
      s.checksFailed += failed;
      if (degraded) s.degraded++;
      if (fellBack) s.fellBack++;
    }
  }
}

export function codeName(code: number): string {
  return (status as unknown as Record<number, string>)[code] ?? `CODE_${code}`;
}

export interface LatencySummary {
  readonly count: number;
  readonly minMs: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export function summarize(h: Histogram): LatencySummary {
  const n = h.totalCount;
  const at = (p: number) => (n ? h.getValueAtPercentile(p) / 1000 : 0);
  return {
    count: n,
    minMs: n ? h.minNonZeroValue / 1000 : 0,
    meanMs: n ? h.mean / 1000 : 0,
    p50Ms: at(50),
    p90Ms: at(90),
    p95Ms: at(95),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: n ? h.maxValue / 1000 : 0,
  };
}

/** Percentiles for the distribution plot: denser towards the tail. */
export const DISTRIBUTION_PERCENTILES = [
  0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100,
] as const;

export function distribution(h: Histogram): Array<{ percentile: number; ms: number }> {
  if (h.totalCount === 0) return [];
  return DISTRIBUTION_PERCENTILES.map((p) => ({ percentile: p, ms: h.getValueAtPercentile(p) / 1000 }));
}
