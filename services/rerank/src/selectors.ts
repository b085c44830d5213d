import {
  byScoreDesc,
  type Candidate,
  cosine,
  type ItemCatalog,
  type Selector,
  type StageContext,
  topGenre,
  userGenreProfile,
} from "@recsys/shared";

/** score = sum of weight * task score; candidates without task scores keep their score. Sorts. */
export function weightedFusionSelector(weights: Readonly<Record<string, number>>): Selector {
  return {
    id: "weighted_fusion",
    select(_ctx, candidates) {
      for (const c of candidates) {
        const tasks = Object.entries(c.taskScores);
        if (tasks.length === 0) continue;
        let fused = 0;
        for (const [task, value] of tasks) fused += (weights[task] ?? 0) * value;
        c.score = fused;
      }
      return candidates.sort(byScoreDesc);
    },
  };
}

/**
 * Maximal Marginal Relevance over item genre vectors: repeatedly picks the
 * candidate maximising  lambda * relevance - (1 - lambda) * max similarity to
 * what is already picked. Relevance is the score rescaled to [0, 1].
 * Only the first `count` positions are diversified; the rest keep their order.
 */
export function mmrSelector(catalog: ItemCatalog, lambda: number, poolSize: number): Selector {
  return {
    id: "mmr_diversity",
    select(_ctx, candidates, count) {
      const pool = candidates.slice(0, Math.max(count, poolSize));
      if (pool.length === 0) return candidates;
      const max = Math.max(...pool.map((c) => c.score));
      const min = Math.min(...pool.map((c) => c.score));
      const span = max - min || 1;
      const vectors = pool.map((c) => catalog.genreVector(c.itemId));
      const maxSim = new Float64Array(pool.length);
      const taken = new Uint8Array(pool.length);
      const picked: Candidate[] = [];
      for (let round = 0; round < Math.min(count, pool.length); round++) {
        let best = -1;
        let bestValue = Number.NEGATIVE_INFINITY;
        for (let i = 0; i < pool.length; i++) {
          if (taken[i]) continue;
          const relevance = (pool[i]!.score - min) / span;
          const value = lambda * relevance - (1 - lambda) * maxSim[i]!;
          if (value > bestValue) {
            bestValue = value;
            best = i;
          }
        }
        taken[best] = 1;
        picked.push(pool[best]!);
        for (let i = 0; i < pool.length; i++) {
          if (!taken[i]) maxSim[i] = Math.max(maxSim[i]!, cosine(vectors[i]!, vectors[best]!));
        }
      }
      const rest = pool.filter((_, i) => !taken[i]);
      return [...picked, ...rest, ...candidates.slice(pool.length)];
    },
  };
}

/**
 * At most `ceil(fraction * count)` items per primary genre (an item's first
 * genre) in the first `count` positions. Items over the cap move down; if the
 * cap would leave the list short, the overflow fills it in order.
 */
export function genreCapSelector(catalog: ItemCatalog, fraction: number): Selector {
  return {
    id: "genre_cap",
    select(_ctx, candidates, count) {
      const cap = Math.max(1, Math.ceil(fraction * count));
      const perGenre = new Map<string, number>();
      const head: Candidate[] = [];
      const overflow: Candidate[] = [];
      for (const c of candidates) {
        if (head.length >= count) {
          overflow.push(c);
          continue;
        }
        const genre = catalog.items.get(c.itemId)?.genres[0] ?? "";
        const used = perGenre.get(genre) ?? 0;
        if (genre && used >= cap) overflow.push(c);
        else {
          perGenre.set(genre, used + 1);
          head.push(c);
        }
      }
      return [...head, ...overflow];
    },
  };
}

/** Fills `reason` from the candidate's provenance. */
export function reasonFor(
  catalog: ItemCatalog,
  ctx: StageContext,
  c: Candidate,
  profile?: Float32Array,
): string {
  if (c.channels.includes("query") && ctx.query) return `matches your query "${ctx.query}"`;
  const seed = c.reasonIndex >= 0 ? ctx.user.history[c.reasonIndex]?.itemId : undefined;
  if (seed && catalog.has(seed)) return `because you watched ${catalog.title(seed)}`;
  if (c.channels.includes("fresh")) return "new and similar to what you watch";
  if (c.channels.includes("popular") && c.channels.length === 1) return "trending";
  const genre = profile ? topGenre(catalog, profile) : undefined;
  const itemGenres = catalog.items.get(c.itemId)?.genres ?? [];
  if (genre && itemGenres.includes(genre)) return `popular in ${genre}, a genre you like`;
  return "trending";
}

export function userProfile(catalog: ItemCatalog, ctx: StageContext): Float32Array {
  return userGenreProfile(catalog, ctx.user.history);
}
