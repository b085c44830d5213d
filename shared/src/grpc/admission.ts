/**
 * Adaptive admission for one RPC method: a concurrency limit that follows the
 * measured latency, in the manner of TCP congestion control and Netflix's
 * concurrency-limits (AIMD). A call that finds the limit reached is refused
 * at once with RESOURCE_EXHAUSTED instead of queueing behind work it would
 * only slow down; so under overload the admitted calls keep their latency and
 * the rest learn within milliseconds that they should retry elsewhere.
 *
 * - A call that answers within half of `targetMs` while the limit was in use
 *   (at least half of it taken) raises the limit by 1 / limit (about +1 per
 *   limit's worth of calls).
 * - A call slower than `targetMs`, or one its handler flags as overloaded (a
 *   stage that timed out), that took the last free slot of the limit, lowers
 *   it by `backoff` (x0.9), at most once per quarter of `targetMs`, so one
 *   burst of slow answers counts once or twice, not once per answer. Slow
 *   answers below the limit do not lower it: under the service's capacity
 *   the limit should not bind at all.
 * - A call whose deadline leaves less time than the fastest recent answer is
 *   refused up front: it could only time out.
 */
export interface AdmissionOptions {
  /** Latency the method should keep, ms (e.g. the Recommend SLO's p99 with some room). */
  readonly targetMs: number;
  readonly initialLimit?: number;
  readonly minLimit?: number;
  readonly maxLimit?: number;
  /** Multiplicative decrease on a slow or overloaded call (0 < backoff < 1). */
  readonly backoff?: number;
}

export type AdmissionRefusal = "limit" | "deadline";

export class AdaptiveLimiter {
  private limitValue: number;
  private inFlightCount = 0;
  private lastDecrease = Number.NEGATIVE_INFINITY;
  /** Fastest answer in the current and the previous window of 100 answers, ms. */
  private windowMin = Number.POSITIVE_INFINITY;
  private previousMin = Number.POSITIVE_INFINITY;
  private windowCount = 0;
  readonly targetMs: number;
  private readonly minLimit: number;
  private readonly maxLimit: number;
  private readonly backoff: number;

  constructor(options: AdmissionOptions) {
    if (!(options.targetMs > 0)) throw new Error("admission targetMs must be > 0");
    this.targetMs = options.targetMs;
    this.minLimit = Math.max(1, options.minLimit ?? 2);
    this.maxLimit = Math.max(this.minLimit, options.maxLimit ?? 256);
    this.backoff = Math.min(0.99, Math.max(0.1, options.backoff ?? 0.9));
    this.limitValue = Math.min(this.maxLimit, Math.max(this.minLimit, options.initialLimit ?? 8));
  }

  get limit(): number {
    return Math.floor(this.limitValue);
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** The fastest recent answer, ms (Infinity before any). */
  get fastestMs(): number {
    return Math.min(this.windowMin, this.previousMin);
  }

  /**
   * Admits a call or says why not. `remainingMs` is the time left before its
   * deadline (Infinity without one). An admitted call must `release` once.
   */
  acquire(
    remainingMs: number,
  ): { admitted: true; inFlightAtStart: number } | { admitted: false; why: AdmissionRefusal } {
    const fastest = this.fastestMs;
    if (Number.isFinite(fastest) && remainingMs < fastest) return { admitted: false, why: "deadline" };
    if (this.inFlightCount >= this.limit) return { admitted: false, why: "limit" };
    return { admitted: true, inFlightAtStart: this.inFlightCount++ };
  }

  /**
   * Ends an admitted call: `latencyMs` it took, `overloaded` when it failed
   * for lack of capacity or its handler said so, `inFlightAtStart` from acquire.
   */
  release(latencyMs: number, overloaded: boolean, inFlightAtStart: number, nowMs = performance.now()): void {
    this.inFlightCount--;
    // Only a call that took the last free slot says the limit is too high: a slow answer below
    // the limit is noise (a GC pause, a slow channel) or load the limit does not govern, and
    // lowering the limit for it refuses calls the service could have answered.
    const binding = inFlightAtStart + 1 >= this.limit;
    // ... and one that ran with at least half of it taken says it could grow
    const inUse = inFlightAtStart + 1 >= this.limit / 2;
    if (binding && (overloaded || latencyMs > this.targetMs)) {
      if (nowMs - this.lastDecrease >= this.targetMs / 4) {
        this.lastDecrease = nowMs;
        this.limitValue = Math.max(this.minLimit, this.limitValue * this.backoff);
      }
      return;
    }
    this.windowMin = Math.min(this.windowMin, latencyMs);
    if (++this.windowCount >= 100) {
      this.previousMin = this.windowMin;
      this.windowMin = Number.POSITIVE_INFINITY;
      this.windowCount = 0;
    }
    // grow only on answers well inside the target, while the limit is what holds calls back
    if (overloaded || latencyMs > this.targetMs / 2) return;
    if (inUse) this.limitValue = Math.min(this.maxLimit, this.limitValue + 1 / this.limitValue);
  }
}
