import { type Candidate, type CandidateSource, newCandidate, type StageContext } from "@recsys/shared";
import type { ContentIndex } from "../content/content-index.js";
import { contentProfile } from "../content/profile.js";

/** What the channel needs from the text encoder (the SentenceEncoder; a fake in tests). */
export interface QueryEncoder {
  readonly dim: number;
  encode(texts: readonly string[], options?: { signal?: AbortSignal }): Promise<{ vectors: Float32Array }>;
}

export interface QueryOptions {
  /** w in score = (1 − w)·cos(query, item) + w·cos(user profile, item). */
  readonly personalisationWeight: number;
  /** Recent positive items that make the user's content profile. */
  readonly seeds: number;
  /** An item matches when cos(query, item) ≥ max(minSimilarity, relativeSimilarity × the best cos). */
  readonly minSimilarity?: number;
  readonly relativeSimilarity?: number;
  /** Items read from the index per quota slot, re-scored with the blend (default 2). */
  readonly overfetch?: number;
  /** Query vectors kept (LRU), so a repeated query skips the encoder. */
  readonly cacheSize?: number;
}

/** Whitespace and case do not change the embedding (the tokenizer lower-cases and splits on spaces). */
export function normaliseQuery(query: string): string {
  return query.trim().replace(/\s+/g, " ").toLowerCase();
}

/**
 * Free-text query → text encoder → content ANN, blended with the user's
 * interests. Of the `overfetch × quota` items closest to the query, those
 * that match it (cos ≥ max(minSimilarity, relativeSimilarity × best cos):
 * an absolute floor drops gibberish, a relative one keeps the set to what
 * matches this query as well as its best match does) are re-scored as
 * (1 − w)·cos(query, item) + w·cos(profile, item), where the profile is the
 * user's content profile (w = 0 without one). Produces nothing when the
 * request has no query. Rerank puts these items first with the reason
 * "matches your query".
 */
export class QueryCandidateSource implements CandidateSource {
  readonly id = "query";
  private readonly cache = new Map<string, Float32Array>();

  constructor(
    private readonly index: ContentIndex,
    private readonly encoder: () => QueryEncoder | undefined,
    private readonly options: QueryOptions,
  ) {}

  get version(): string {
    const o = this.options;
    return `content-ann-w${o.personalisationWeight}-min${o.minSimilarity ?? 0}-rel${o.relativeSimilarity ?? 0}`;
  }

  async fetch(ctx: StageContext, quota: number): Promise<Candidate[]> {
    const query = normaliseQuery(ctx.query);
    if (!query || quota <= 0) return [];
    const q = await this.queryVector(query, ctx.signal);
    const history = ctx.user.history;
    const seen = new Set<number>();
    for (const e of history) {
      const label = this.index.labelOf(e.itemId);
      if (label !== undefined) seen.add(label);
    }
    const k = quota * (this.options.overfetch ?? 2);
    const hits = this.index.search(q, k, seen.size > 0 ? (label) => !seen.has(label) : undefined);
    const floor = Math.max(
      this.options.minSimilarity ?? 0,
      (this.options.relativeSimilarity ?? 0) * (hits[0]?.score ?? 0),
    );
    const matches = hits.filter((h) => h.score >= floor);
    const w = this.options.personalisationWeight;
    const profile = w > 0 ? contentProfile(this.index, history, this.options.seeds) : undefined;
    const scored = matches.map((h) => ({
      label: h.label,
      score: profile ? (1 - w) * h.score + w * this.index.dot(profile.vector, h.label) : h.score,
    }));
    scored.sort((a, b) => b.score - a.score || a.label - b.label);
    const kept = scored.slice(0, quota);
    const top = kept[0]?.score ?? 0;
    if (!(top > 0)) return [];
    return kept.map((s) =>
      newCandidate(this.index.itemId(s.label), { score: Math.max(0, s.score) / top, channels: [this.id] }),
    );
  }

  /**
   * Runs a few queries of different lengths through the whole path (encoder
   * runs of new shapes, the JIT) before the service turns SERVING, so the
   * first real query does not pay for it; leaves the cache empty.
   */
  async warmUp(ctx: StageContext): Promise<void> {
    for (const text of ["warm up", "a quiet film about a long journey home", "comedy"]) {
      await this.fetch({ ...ctx, query: text }, 100);
    }
    this.cache.clear();
  }

  private async queryVector(query: string, signal?: AbortSignal): Promise<Float32Array> {
    const cached = this.cache.get(query);
    if (cached) {
      this.cache.delete(query); // most recently used goes last
      this.cache.set(query, cached);
      return cached;
    }
    const encoder = this.encoder();
    if (!encoder) throw new Error("the text encoder is not loaded");
    if (encoder.dim !== this.index.dim)
      throw new Error(
        `the text encoder gives ${encoder.dim}-d vectors, the content index holds ${this.index.dim}-d`,
      );
    const { vectors } = await encoder.encode([query], { signal });
    const vector = vectors.slice(0, this.index.dim);
    this.cache.set(query, vector);
    if (this.cache.size > (this.options.cacheSize ?? 1_024)) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return vector;
  }
}
