/**
 * The user's content profile: the recency-weighted mean of the content
 * vectors of their most recent positive items (skips, dislikes and low
 * ratings are not evidence of taste), normalised. The `fresh` and `query`
 * channels both use it.
 */
import { type HistoryRow, isPositiveEvent } from "@recsys/shared";
import type { ContentIndex } from "./content-index.js";

export interface ContentSeed {
  /** Position in the user's history (for "because you watched X"). */
  readonly pos: number;
  readonly label: number;
}

export interface ContentProfile {
  /** Unit length. */
  readonly vector: Float32Array;
  readonly seeds: ContentSeed[];
}

export const DEFAULT_PROFILE_DECAY = 0.9;

/** Undefined when no recent positive item has a content vector. */
export function contentProfile(
  index: ContentIndex,
  history: readonly HistoryRow[],
  maxSeeds: number,
  decay = DEFAULT_PROFILE_DECAY,
): ContentProfile | undefined {
  const vector = new Float32Array(index.dim);
  const seeds: ContentSeed[] = [];
  const used = new Set<number>();
  let weight = 1;
  for (let pos = history.length - 1; pos >= 0 && seeds.length < maxSeeds; pos--) {
    const event = history[pos]!;
    if (!isPositiveEvent(event)) continue;
    const label = index.labelOf(event.itemId);
    if (label === undefined || used.has(label)) continue;
    used.add(label);
    seeds.push({ pos, label });
    const v = index.vectorOf(label);
    for (let d = 0; d < vector.length; d++) vector[d]! += weight * v[d]!;
    weight *= decay;
  }
  if (seeds.length === 0) return undefined;
  let sq = 0;
  for (const x of vector) sq += x * x;
  const norm = Math.sqrt(sq);
  if (!(norm > 0)) return undefined;
  for (let d = 0; d < vector.length; d++) vector[d]! /= norm;
  return { vector, seeds };
}

/** The seed whose item is most similar to `label` (its history position), or -1. */
export function closestSeed(index: ContentIndex, seeds: readonly ContentSeed[], label: number): number {
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  const v = index.vectorOf(label);
  for (const seed of seeds) {
    const s = index.dot(v, seed.label);
    if (s > bestScore) {
      bestScore = s;
      best = seed.pos;
    }
  }
  return best;
}
