import type { Candidate } from "@recsys/shared";

/**
 * Keeps the `keep` best candidates by score, except that each channel in
 * `reserved` keeps up to its number of candidates (its best by recall score)
 * in the kept set, displacing the lowest-scored unreserved ones. The interim
 * scorers see genres and popularity only: they cannot judge an item nobody
 * has interacted with yet (`fresh`) or how well an item matches a free-text
 * query (`query`), so those channels' best candidates are guaranteed a
 * place in rank. Returns the kept candidates best first by score.
 * `sorted` must be sorted by score, best first.
 */
export function keepWithReserves(
  sorted: readonly Candidate[],
  keep: number,
  reserved: Readonly<Record<string, number>>,
): Candidate[] {
  if (sorted.length <= keep) return [...sorted];
  const mustKeep = new Set<Candidate>();
  for (const [channel, count] of Object.entries(reserved)) {
    if (!(count > 0)) continue;
    const best = sorted
      .filter((c) => c.channels.includes(channel))
      .sort((a, b) => b.recallScore - a.recallScore)
      .slice(0, Math.min(count, keep));
    for (const c of best) mustKeep.add(c);
  }
  const room = Math.max(0, keep - mustKeep.size);
  const out: Candidate[] = [];
  let others = 0;
  for (const c of sorted) {
    if (mustKeep.has(c)) out.push(c);
    else if (others < room) {
      out.push(c);
      others++;
    }
  }
  return out.slice(0, keep);
}
