import {
  type Candidate,
  type CandidateSource,
  decayedPopularity,
  type Interaction,
  newCandidate,
} from "@recsys/shared";

/**
 * Trending items: interaction counts with exponential time decay, relative to
 * `nowMs` (the latest event for a historical dataset). Scores are normalised
 * so the top item scores 1.
 */
export class PopularCandidateSource implements CandidateSource {
  readonly id = "popular";
  readonly version: string;
  private readonly ranked: Array<{ itemId: string; score: number }>;

  constructor(interactions: readonly Interaction[], nowMs: number, halfLifeDays: number) {
    this.ranked = decayedPopularity(interactions, nowMs, halfLifeDays);
    this.version = `decay-hl${halfLifeDays}d`;
  }

  /** Item ids, most popular first. */
  topItemIds(n: number): string[] {
    return this.ranked.slice(0, n).map((r) => r.itemId);
  }

  fetch(_ctx: unknown, quota: number): Candidate[] {
    return this.ranked
      .slice(0, quota)
      .map((r) => newCandidate(r.itemId, { score: r.score, channels: [this.id] }));
  }
}
