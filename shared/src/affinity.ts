/**
 * User genre profile: the transparent user representation behind the interim
 * prerank and rank scorers. Each history item adds its genre vector, weighted
 * by how much the user liked it and how recent it is.
 */
import type { ItemCatalog } from "./catalog.js";
import { type HistoryRow, isPositiveEvent } from "./funnel/types.js";

export interface GenreProfileOptions {
  /** Weight of the i-th most recent event is recencyDecay^i. */
  readonly recencyDecay?: number;
  /** Ratings below this count as weak negative evidence. */
  readonly likeThreshold?: number;
}

/** Unit-length genre preference vector; all zeros for an empty history. */
export function userGenreProfile(
  catalog: ItemCatalog,
  history: readonly HistoryRow[],
  options: GenreProfileOptions = {},
): Float32Array {
  const decay = options.recencyDecay ?? 0.98;
  const likeThreshold = options.likeThreshold ?? 3;
  const profile = new Float32Array(catalog.genres.length);
  let weight = 1;
  for (let i = history.length - 1; i >= 0; i--) {
    const event = history[i]!;
    const liked = isPositiveEvent(event, likeThreshold);
    const w = weight * (liked ? 1 : -0.3);
    const v = catalog.genreVector(event.itemId);
    for (let g = 0; g < v.length; g++) profile[g]! += w * v[g]!;
    weight *= decay;
  }
  let norm = 0;
  for (let g = 0; g < profile.length; g++) {
    if (profile[g]! < 0) profile[g] = 0;
    norm += profile[g]! * profile[g]!;
  }
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let g = 0; g < profile.length; g++) profile[g]! *= inv;
  }
  return profile;
}

/** Dot product of a unit profile with an item's unit genre vector: cosine in [0, 1]. */
export function genreAffinity(catalog: ItemCatalog, profile: Float32Array, itemId: string): number {
  const v = catalog.genreVector(itemId);
  let dot = 0;
  for (let g = 0; g < v.length; g++) dot += profile[g]! * v[g]!;
  return dot;
}

/** Index of the strongest genre in a profile, or undefined for an empty one. */
export function topGenre(catalog: ItemCatalog, profile: Float32Array): string | undefined {
  let best = -1;
  let bestValue = 0;
  for (let g = 0; g < profile.length; g++) {
    if (profile[g]! > bestValue) {
      bestValue = profile[g]!;
      best = g;
    }
  }
  return best >= 0 ? catalog.genres[best] : undefined;
}
