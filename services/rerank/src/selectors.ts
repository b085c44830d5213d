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
 * content vector. Vectors are looked up once per item.
 */
export function itemSimilarity(
  catalog: ItemCatalog,
  content: ContentTable | undefined,
  itemIds: readonly string[],
): (i: number, j: number) => number {
  const contentVectors = itemIds.map((id) => content?.get(id));
  const genreVectors = itemIds.map((id) => catalog.genreVector(id));
  // Norms once per item: MMR asks for count x pool similarities, each then one dot product.
  const contentNorms = contentVectors.map((v) => (v ? Math.sqrt(dot(v, v)) : 0));
  const genreNorms = genreVectors.map((v) => Math.sqrt(dot(v, v)));
  return (i, j) => {
    const a = contentVectors[i];
    const b = contentVectors[j];
    if (a && b && a.length === b.length) {
      const n = contentNorms[i]! * contentNorms[j]!;
      return n > 0 ? dot(a, b) / n : 0;
    }
    const n = genreNorms[i]! * genreNorms[j]!;
    return n > 0 ? dot(genreVectors[i]!, genreVectors[j]!) / n : 0;
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
      const max = Math.max(...pool.map((c) => c.score));
      const min = Math.min(...pool.map((c) => c.score));
      const span = max - min || 1;
      const similarity = itemSimilarity(
        catalog,
        content,
        pool.map((c) => c.itemId),
      );
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
          if (!taken[i]) maxSim[i] = Math.max(maxSim[i]!, similarity(i, best));
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
      const fresh = candidates.map((c, i) => ({ c, i, age: age(c) })).filter(({ c }) => isFresh(c));
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
