/**
 * Temporal splits. Per-user: each user's last `holdout` events are the
 * targets and everything before them is history (the evaluation split for
 * MovieLens, where a global cutoff leaves too few users). Global: everything
 * before the cutoff is training (for synthetic data and online replay).
 */
import { groupByUser, type Interaction } from "./dataset.js";

export interface UserSplit {
  readonly userId: string;
  readonly history: Interaction[];
  readonly targets: Interaction[];
}

/** Users with at least `minHistory` events before their last `holdout` ones. */
export function perUserTemporalSplit(
  interactions: readonly Interaction[],
  holdout = 1,
  minHistory = 1,
): { train: Interaction[]; test: UserSplit[] } {
  const train: Interaction[] = [];
  const test: UserSplit[] = [];
  for (const [userId, rows] of groupByUser(interactions)) {
    if (rows.length < holdout + minHistory) {
      train.push(...rows);
      continue;
    }
    const history = rows.slice(0, rows.length - holdout);
    train.push(...history);
    test.push({ userId, history, targets: rows.slice(rows.length - holdout) });
  }
  return { train, test };
}

/** Timestamp (ms) at quantile `q` of all events. */
export function timeQuantile(interactions: readonly Interaction[], q: number): number {
  const ts = interactions.map((r) => r.timestampMs).sort((a, b) => a - b);
  return ts[Math.min(ts.length - 1, Math.max(0, Math.floor(q * ts.length)))] ?? 0;
}

export function globalTemporalSplit(
  interactions: readonly Interaction[],
  cutoffMs: number,
): { train: Interaction[]; test: Interaction[] } {
  const train: Interaction[] = [];
  const test: Interaction[] = [];
  for (const r of interactions) (r.timestampMs < cutoffMs ? train : test).push(r);
  return { train, test };
}
