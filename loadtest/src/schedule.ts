/**
 * Send times of an arrival-rate scenario, computed up front from the rate
 * curve and never from how fast earlier requests came back: the open model
 * that avoids coordinated omission.
 *
 * The rate is piecewise linear (constant-arrival-rate is one flat segment,
 * ramping-arrival-rate one segment per stage). The next arrival is where the
 * integral of the rate since the previous one reaches 1 (uniform, k6's
 * spacing) or an Exp(1) draw (poisson).
 */
import { parseDuration } from "./duration.js";
import type { ConstantArrivalRate, RampingArrivalRate } from "./scenario.js";

/** Small, fast, seedable PRNG (mulberry32), shared with the services. */
export { seededRandom } from "@recsys/shared";

interface Segment {
  readonly startMs: number;
  readonly durationMs: number;
  /** Requests per ms at the start and end of the segment. */
  readonly from: number;
  readonly to: number;
}

export class ArrivalSchedule {
  private seg = 0;
  /** Position inside the current segment, ms. */
  private pos = 0;
  private first = true;

  constructor(
    private readonly segments: readonly Segment[],
    private readonly poisson: boolean,
    private readonly random: () => number,
  ) {}

  static of(s: ConstantArrivalRate | RampingArrivalRate, random: () => number): ArrivalSchedule {
    const unitMs = parseDuration(s.timeUnit ?? "1s");
    const start = s.startTime ? parseDuration(s.startTime) : 0;
    const segments: Segment[] = [];
    if (s.executor === "constant-arrival-rate") {
      const r = s.rate / unitMs;
      segments.push({ startMs: start, durationMs: parseDuration(s.duration), from: r, to: r });
    } else {
      let t = start;
      let prev = (s.startRate ?? 0) / unitMs;
      for (const st of s.stages) {
        const d = parseDuration(st.duration);
        const next = st.target / unitMs;
        // A 0-length stage is a jump of the rate.
        if (d > 0) segments.push({ startMs: t, durationMs: d, from: prev, to: next });
        prev = next;
        t += d;
      }
    }
    return new ArrivalSchedule(segments, s.arrival === "poisson", random);
  }

  /** Offset of the next send from the start of the run (ms), or Infinity when the scenario is over. */
  next(): number {
    if (this.first) {
      this.first = false;
      const s0 = this.segments[0];
      // Like k6, the first iteration starts right away when the rate allows one.
      if (!this.poisson && s0 && s0.from > 0) return s0.startMs;
    }
    let need = this.poisson ? Math.max(1e-9, -Math.log(1 - this.random())) : 1;
    while (this.seg < this.segments.length) {
      const s = this.segments[this.seg]!;
      const slope = (s.to - s.from) / s.durationMs;
      const r0 = s.from + slope * this.pos;
      const left = s.durationMs - this.pos;
      const available = r0 * left + (slope * left * left) / 2;
      // The epsilon keeps an arrival that lands exactly on a segment end in the next segment
      // (or out of the run), so rate x duration sends are made, not one more.
      if (available >= need + 1e-9) {
        // Smallest d >= 0 with r0*d + slope*d^2/2 = need, in the form that is stable when slope ~ 0.
        const d = (2 * need) / (r0 + Math.sqrt(Math.max(0, r0 * r0 + 2 * slope * need)));
        this.pos = Math.min(s.durationMs, this.pos + d);
        return s.startMs + this.pos;
      }
      need -= Math.max(0, available);
      this.seg++;
      this.pos = 0;
    }
    return Number.POSITIVE_INFINITY;
  }
}
