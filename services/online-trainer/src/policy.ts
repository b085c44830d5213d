/**
 * When an online update is due: every `everySamples` new samples or every
 * `everyMs`, whichever comes first, never with fewer than `minSamples`
 * buffered. Both counters restart at each attempt, failed ones included, so a
 * failing trainer is retried with the next batch instead of in a loop; a
 * time trigger that finds too few samples fires as soon as enough arrived.
 */
export interface TriggerPolicy {
  readonly everySamples: number;
  readonly everyMs: number;
  readonly minSamples: number;
}

export interface TriggerState {
  /** Samples waiting (those kept from a failed or skipped attempt included). */
  readonly buffered: number;
  /** Samples that arrived since the last attempt. */
  readonly newSinceAttempt: number;
  /** Since the last attempt (or the start of the process). */
  readonly msSinceAttempt: number;
}

export type TriggerReason = "samples" | "time";

export function updateDue(policy: TriggerPolicy, state: TriggerState): TriggerReason | undefined {
  if (state.buffered < policy.minSamples || state.buffered === 0) return undefined;
  if (state.newSinceAttempt >= policy.everySamples) return "samples";
  if (state.msSinceAttempt >= policy.everyMs) return "time";
  return undefined;
}
