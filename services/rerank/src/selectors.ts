import {
  byScoreDesc,
  type Candidate,
  type ContentTable,
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
 * Pairwise similarity of `itemIds` for diversity: cosine of their content
 * vectors (the content table: title, year, genres and, for catalog items,
 * their description), or of their genre vectors when either item has no
 * content vector. An item's vectors and norms are looked up once, when a
 * similarity first needs them (lazy MMR asks about few of the pool).
 */
export function itemSimilarity(
  catalog: ItemCatalog,
  content: ContentTable | undefined,
  itemIds: readonly string[],
): (i: number, j: number) => number {
  const n = itemIds.length;
  const contentVectors: Array<Float32Array | undefined> = new Array(n);
  const genreVectors: Array<Float32Array | undefined> = new Array(n);
  const contentNorms = new Float64Array(n).fill(-1);
  const genreNorms = new Float64Array(n).fill(-1);
  const contentOf = (i: number) => {
    if (contentNorms[i]! < 0) {
      const v = content?.get(itemIds[i]!);
      contentVectors[i] = v;
      contentNorms[i] = v ? Math.sqrt(dot(v, v)) : 0;
    }
    return contentVectors[i];
  };
  const genresOf = (i: number) => {
    if (genreNorms[i]! < 0) {
      const v = catalog.genreVector(itemIds[i]!);
      genreVectors[i] = v;
      genreNorms[i] = Math.sqrt(dot(v, v));
    }
    return genreVectors[i]!;
  };
  return (i, j) => {
    const a = contentOf(i);
    const b = contentOf(j);
    if (a && b && a.length === b.length) {
      const norms = contentNorms[i]! * contentNorms[j]!;
      return norms > 0 ? dot(a, b) / norms : 0;
    }
    const ga = genresOf(i);
    const gb = genresOf(j);
    const norms = genreNorms[i]! * genreNorms[j]!;
    return norms > 0 ? dot(ga, gb) / norms : 0;
  };
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
}

/**
 * Maximal Marginal Relevance: repeatedly picks the candidate maximising
 *   lambda * relevance - (1 - lambda) * max similarity to what is already picked,
 * similarity as in itemSimilarity (content vectors, else genre vectors).
 * Relevance is the score rescaled to [0, 1]. Only the first `count`
 * positions are diversified; the rest keep their order.
 *
 * Lazily: a candidate's max similarity only grows as items are picked, so
 * its value against the picks it was last compared with is an upper bound.
 * Each round takes the candidate with the highest bound (the first in pool
 * order on ties) and brings it up to date with the picks since; if it still
 * leads, it is the exact choice of the plain greedy loop (same value, same
 * tie-break), otherwise the next leader is tried. Low-relevance candidates
 * are never compared with anything: about a tenth of the similarities.
 */
export function mmrSelector(
  catalog: ItemCatalog,
  lambda: number,
  poolSize: number,
  content?: ContentTable,
): Selector {
  return {
    id: "mmr_diversity",
    select(_ctx, candidates, count) {
      const pool = candidates.slice(0, Math.max(count, poolSize));
      if (pool.length === 0) return candidates;
      let max = Number.NEGATIVE_INFINITY;
      let min = Number.POSITIVE_INFINITY;
      for (const c of pool) {
        if (c.score > max) max = c.score;
        if (c.score < min) min = c.score;
      }
      const span = max - min || 1;
      const similarity = itemSimilarity(
        catalog,
        content,
        pool.map((c) => c.itemId),
      );
      const n = pool.length;
      const relevance = Float64Array.from(pool, (c) => (c.score - min) / span);
      const maxSim = new Float64Array(n);
      /** How many of `picked` each candidate's maxSim has seen. */
      const seen = new Int32Array(n);
      const bound = Float64Array.from(relevance, (r) => lambda * r);
      const taken = new Uint8Array(n);
      const picked: number[] = [];
      for (let round = 0; round < Math.min(count, n); round++) {
        for (;;) {
          let best = -1;
          for (let i = 0; i < n; i++) if (!taken[i] && (best < 0 || bound[i]! > bound[best]!)) best = i;
          if (seen[best] === picked.length) {
            taken[best] = 1;
            picked.push(best);
            break;
          }
          for (let k = seen[best]!; k < picked.length; k++)
            maxSim[best] = Math.max(maxSim[best]!, similarity(best, picked[k]!));
          seen[best] = picked.length;
          bound[best] = lambda * relevance[best]! - (1 - lambda) * maxSim[best]!;
        }
      }
      const rest = pool.filter((_, i) => !taken[i]);
      return [...picked.map((i) => pool[i]!), ...rest, ...candidates.slice(pool.length)];
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

/**
 * Exploration slots for new items: the `slots` newest candidates of the
 * `fresh` channel (by catalogue age; ties keep list order) are guaranteed a
 * place in the first `count` positions, taking the places of the lowest
 * placed others there. The rank model scores a brand-new item through its
 * content only (it is outside the ID vocabularies), so fresh items that have
 * already collected interactions usually outscore it; without slots for the
 * newest it would rarely be shown, and so never collect the interactions
 * that would rank it.
 */
export function freshSlotsSelector(slots: number, catalog: ItemCatalog): Selector {
  const isFresh = (c: Candidate) => c.channels.includes("fresh");
  return {
    id: "fresh_slots",
    select(_ctx, candidates, count) {
      if (slots <= 0) return candidates;
      const now = Date.now();
      const age = (c: Candidate) => catalog.ageMs(c.itemId, now) ?? Number.POSITIVE_INFINITY;
      const fresh: Array<{ c: Candidate; i: number; age: number }> = [];
      for (const [i, c] of candidates.entries()) if (isFresh(c)) fresh.push({ c, i, age: age(c) });
      fresh.sort((a, b) => (a.age === b.age ? a.i - b.i : a.age < b.age ? -1 : 1));
      const wanted = new Set(fresh.slice(0, slots).map((f) => f.c));
      const head = candidates.slice(0, count);
      const promoted = candidates.slice(count).filter((c) => wanted.has(c));
      if (promoted.length === 0) return candidates;
      // The last places of the head not holding a wanted item, in list order; the best promoted item takes the first.
      const places: number[] = [];
      for (let k = head.length - 1; k >= 0 && places.length < promoted.length; k--)
        if (!wanted.has(head[k]!)) places.unshift(k);
      const demoted = places.map((k) => head[k]!);
      for (const [n, k] of places.entries()) head[k] = promoted[n]!;
      const moved = new Set(promoted.slice(0, places.length));
      const rest = candidates.slice(count).filter((c) => !moved.has(c));
      return [...head, ...demoted, ...rest];
    },
  };
}

/**
 * With a free-text query, the candidates of the `query` channel (items whose
 * content matches the query, blended with the user's interests in recall)
 * come first, in their current order; the others follow.
 */
export const queryFirstSelector: Selector = {
  id: "query_first",
  select(ctx, candidates) {
    if (!ctx.query.trim()) return candidates;
    const matches = candidates.filter((c) => c.channels.includes("query"));
    return matches.length === 0
      ? candidates
      : [...matches, ...candidates.filter((c) => !c.channels.includes("query"))];
  },
};

/** Fills `reason` from the candidate's provenance. */
export function reasonFor(
  catalog: ItemCatalog,
  ctx: StageContext,
  c: Candidate,
  profile?: Float32Array,
): string {
  if (c.channels.includes("query") && ctx.query) return `matches your query "${ctx.query}"`;
  const seed = c.reasonIndex >= 0 ? ctx.user.history[c.reasonIndex]?.itemId : undefined;
  const known = seed !== undefined && catalog.has(seed);
  if (c.channels.length === 1 && c.channels[0] === "fresh")
    return known ? `new, similar to ${catalog.title(seed)}` : "new and similar to what you watch";
  if (known) return `because you watched ${catalog.title(seed)}`;
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
