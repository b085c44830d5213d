/** Offline retrieval metrics for one held-out target per user. */
export interface RankedResult {
  /** Recommended item ids, best first. */
  readonly items: readonly string[];
  readonly target: string;
}

export interface RetrievalMetrics {
  readonly users: number;
  readonly hr: Record<number, number>;
  readonly ndcg: Record<number, number>;
  /** Share of the catalogue that appears in some user's top-`coverageAt`. */
  readonly coverage: number;
}

export function retrievalMetrics(
  results: readonly RankedResult[],
  hrAt: readonly number[],
  ndcgAt: readonly number[],
  catalogSize: number,
  coverageAt = 100,
): RetrievalMetrics {
  const hr: Record<number, number> = {};
  const ndcg: Record<number, number> = {};
  for (const k of hrAt) hr[k] = 0;
  for (const k of ndcgAt) ndcg[k] = 0;
  const covered = new Set<string>();
  for (const r of results) {
    const rank = r.items.indexOf(r.target);
    for (const k of hrAt) if (rank >= 0 && rank < k) hr[k]! += 1;
    for (const k of ndcgAt) if (rank >= 0 && rank < k) ndcg[k]! += 1 / Math.log2(rank + 2);
    for (const id of r.items.slice(0, coverageAt)) covered.add(id);
  }
  const n = Math.max(1, results.length);
  for (const k of hrAt) hr[k]! /= n;
  for (const k of ndcgAt) ndcg[k]! /= n;
  return { users: results.length, hr, ndcg, coverage: covered.size / Math.max(1, catalogSize) };
}
