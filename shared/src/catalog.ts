/**
 * The item tables every stage reads: metadata, genre vectors, popularity and
 * a Bayesian-averaged rating per item. Built from the dataset at start-up.
 */
import type { Interaction, ItemRecord } from "./data/dataset.js";

export interface ItemStats {
  /** Number of interactions. */
  count: number;
  /** Sum of ratings. */
  ratingSum: number;
  /** First and last interaction, ms since epoch. */
  firstSeenMs: number;
  lastSeenMs: number;
}

export class ItemCatalog {
  readonly items = new Map<string, ItemRecord>();
  readonly stats = new Map<string, ItemStats>();
  readonly genres: string[];
  private readonly genreIndex = new Map<string, number>();
  private readonly genreVectors = new Map<string, Float32Array>();
  readonly maxCount: number;
  readonly globalMeanRating: number;
  /** Latest interaction time in the data: "now" for historical datasets. */
  readonly latestMs: number;
  /** Creation time (wall clock, ms) of items added or replaced through the catalog service. */
  private readonly createdMs = new Map<string, number>();
  private coldStartPopularityCache: number | undefined;
  /** Counts upserts: a reader that saw the same revision has seen every item as it is now. */
  revision = 0;

  constructor(items: readonly ItemRecord[], interactions: readonly Interaction[]) {
    const genreSet = new Set<string>();
    for (const item of items) {
      this.items.set(item.itemId, item);
      for (const g of item.genres) genreSet.add(g);
    }
    this.genres = [...genreSet].sort();
    for (const [i, g] of this.genres.entries()) this.genreIndex.set(g, i);
    let maxCount = 0;
    let ratingSum = 0;
    let latest = 0;
    for (const r of interactions) {
      let s = this.stats.get(r.itemId);
      if (!s)
        this.stats.set(r.itemId, (s = { count: 0, ratingSum: 0, firstSeenMs: r.timestampMs, lastSeenMs: 0 }));
      s.count++;
      s.ratingSum += r.rating;
      s.firstSeenMs = Math.min(s.firstSeenMs, r.timestampMs);
      s.lastSeenMs = Math.max(s.lastSeenMs, r.timestampMs);
      if (s.count > maxCount) maxCount = s.count;
      ratingSum += r.rating;
      if (r.timestampMs > latest) latest = r.timestampMs;
    }
    this.maxCount = maxCount;
    this.globalMeanRating = interactions.length > 0 ? ratingSum / interactions.length : 0;
    this.latestMs = latest;
  }

  get size(): number {
    return this.items.size;
  }

  /**
   * Adds or replaces an item (an ItemUpdate from the catalog service), so the
   * genre vectors, titles and ages every stage reads see it. `createdAtMs` is
   * the item's wall-clock creation time; 0 keeps what was known (a dataset
   * item keeps its dataset age). Genres outside the vocabulary fixed at load
   * time keep their names (genre caps use them) but add nothing to genre
   * vectors. Returns true when the item is new to this catalogue.
   */
  upsert(item: ItemRecord, createdAtMs = 0): boolean {
    this.revision++;
    const added = !this.items.has(item.itemId);
    this.items.set(item.itemId, item);
    this.genreVectors.delete(item.itemId);
    if (createdAtMs > 0) this.createdMs.set(item.itemId, createdAtMs);
    return added;
  }

  /** Wall-clock creation time of an item added through the catalog service, if known. */
  createdAtMs(itemId: string): number | undefined {
    return this.createdMs.get(itemId);
  }

  /**
   * Age of an item, ms: for items the catalog service created, wall-clock
   * now − created_at; for dataset items, the dataset's "now" (latestMs) minus
   * their first interaction (a historical dataset has no creation times).
   * Undefined when neither is known.
   */
  ageMs(itemId: string, wallNowMs = Date.now()): number | undefined {
    const created = this.createdMs.get(itemId);
    if (created !== undefined) return Math.max(0, wallNowMs - created);
    const s = this.stats.get(itemId);
    return s ? Math.max(0, this.latestMs - s.firstSeenMs) : undefined;
  }

  has(itemId: string): boolean {
    return this.items.has(itemId);
  }

  title(itemId: string): string {
    return this.items.get(itemId)?.title ?? itemId;
  }

  /** Unit-length multi-hot genre vector (zeros for unknown items or no genres). */
  genreVector(itemId: string): Float32Array {
    const cached = this.genreVectors.get(itemId);
    if (cached) return cached;
    const v = new Float32Array(this.genres.length);
    // Genres outside the vocabulary (a catalog item's new genre) neither count nor dilute.
    const known = (this.items.get(itemId)?.genres ?? []).filter((g) => this.genreIndex.has(g));
    for (const g of known) v[this.genreIndex.get(g)!] = 1 / Math.sqrt(known.length);
    this.genreVectors.set(itemId, v);
    return v;
  }

  genreIndexOf(genre: string): number | undefined {
    return this.genreIndex.get(genre);
  }

  /**
   * log-scaled popularity in [0, 1]. An item the catalog service added that
   * has no interactions yet gets the median item's popularity: no evidence
   * is not evidence of unpopularity, and 0 would bury every new item.
   */
  popularityPrior(itemId: string): number {
    const count = this.stats.get(itemId)?.count;
    if (count === undefined && this.createdMs.has(itemId)) return this.coldStartPopularity();
    return this.maxCount > 0 ? Math.log1p(count ?? 0) / Math.log1p(this.maxCount) : 0;
  }

  private coldStartPopularity(): number {
    if (this.coldStartPopularityCache === undefined) {
      const counts = [...this.stats.values()].map((s) => s.count).sort((a, b) => a - b);
      const median = counts[Math.floor(counts.length / 2)] ?? 0;
      this.coldStartPopularityCache = this.maxCount > 0 ? Math.log1p(median) / Math.log1p(this.maxCount) : 0;
    }
    return this.coldStartPopularityCache;
  }

  /** Mean rating shrunk towards the global mean with `priorWeight` pseudo-ratings. */
  bayesianRating(itemId: string, priorWeight = 10): number {
    const s = this.stats.get(itemId);
    const n = s?.count ?? 0;
    const sum = s?.ratingSum ?? 0;
    return (sum + priorWeight * this.globalMeanRating) / (n + priorWeight);
  }
}

/** Cosine similarity of two equal-length vectors (0 when either is zero). */
export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** Loads the dataset in `dir` into an ItemCatalog (and returns the interactions for further use). */
export async function loadCatalog(
  dir: string,
): Promise<{ catalog: ItemCatalog; interactions: import("./data/dataset.js").Interaction[] }> {
  const { loadDataset } = await import("./data/dataset.js");
  const { items, interactions } = await loadDataset(dir);
  return { catalog: new ItemCatalog(items, interactions), interactions };
}

/**
 * Trending: interaction counts with exponential time decay relative to
 * `nowMs`, normalised so the top item scores 1; most popular first, ties by id.
 */
export function decayedPopularity(
  interactions: readonly Interaction[],
  nowMs: number,
  halfLifeDays: number,
): Array<{ itemId: string; score: number }> {
  const lambda = Math.LN2 / (halfLifeDays * 86_400_000);
  const scores = new Map<string, number>();
  for (const r of interactions) {
    const age = Math.max(0, nowMs - r.timestampMs);
    scores.set(r.itemId, (scores.get(r.itemId) ?? 0) + Math.exp(-lambda * age));
  }
  const ranked = [...scores.entries()]
    .map(([itemId, score]) => ({ itemId, score }))
    .sort((a, b) => b.score - a.score || (a.itemId < b.itemId ? -1 : a.itemId > b.itemId ? 1 : 0));
  const top = ranked[0]?.score ?? 1;
  for (const r of ranked) r.score /= top;
  return ranked;
}
