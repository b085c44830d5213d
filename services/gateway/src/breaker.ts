/**
 * Outlier ejection for a stage (circuit breaking): after `threshold` calls in
 * a row fail (timeout, unavailable, a broken contract), the gateway stops
 * calling the stage for `cooldownMs` and takes the stage's fallback at once,
 * instead of spending the stage's whole budget on every request while it
 * hangs. Then one probe call at a time goes out (half-open): a success closes
 * the breaker, a failure opens it for another cooldown.
 */
export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private probing = false;

  constructor(
    readonly stage: string,
    private readonly threshold = 5,
    private readonly cooldownMs = 2_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Open: calls are not made (the probe in flight, if any, is the only one). */
  get open(): boolean {
    return this.failures >= this.threshold;
  }

  /** Whether a call may go out now; in half-open, one probe at a time. */
  allow(): boolean {
    if (!this.open) return true;
    if (this.now() < this.openUntil || this.probing) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
  }

  failure(): void {
    this.failures++;
    this.probing = false;
    if (this.open) this.openUntil = this.now() + this.cooldownMs;
  }
}

/** Thrown instead of calling a stage whose breaker is open. */
export class CircuitOpenError extends Error {
  constructor(readonly stage: string) {
    super(`${stage}: circuit open after repeated failures; skipped`);
  }
}
