/**
 * Input tensors of the learned prerank and rank models (docs/ranking.md):
 * per item a vocabulary index, genre indices, a year bucket and the content
 * vector; per request the user's index and history window, and every
 * candidate in one batch.
 *
 * Prerank scores ~1,000 candidates per request, so the per-item inputs are
 * precomputed once per model version (ItemFeatureTable) and copied into the
 * request's tensors without allocating anything per candidate. int64 values
 * are written as the low 32-bit word of each element (all are small and
 * non-negative; the host is little-endian, see funnel/codec.ts), never as
 * BigInts.
 */
import type { ItemCatalog } from "../catalog.js";
import type { ItemRecord } from "../data/dataset.js";
import type { ContentTable } from "../encoder/content-table.js";
import type { HistoryRow, UserView } from "../funnel/types.js";
import { EventType } from "../gen/recsys/common/v1/common_pb.js";
import { type BufferPool, float32Tensor, type TensorData } from "../onnx/pool.js";
import type { RankingInputName, RankingModelSpec } from "./model.js";

/** Vocabulary indices: 0 padding, 1 out of vocabulary (items and users). */
export const PAD = 0;
export const OOV = 1;

/** What the item inputs of one model version are made from. */
export interface FeatureSpace {
  /** L: history window. */
  readonly maxHistLen: number;
  /** G: genre indices per item. */
  readonly maxGenres: number;
  /** C: content vector size. */
  readonly contentDim: number;
  readonly yearMin: number;
  readonly yearMax: number;
  /** item id -> item_vocab index (>= 2). */
  readonly itemVocab: ReadonlyMap<string, number>;
  /** genre -> genre_vocab index (>= 1). */
  readonly genreVocab: ReadonlyMap<string, number>;
  /** The cand_recall columns: "recall_score", or "channel:<id>" (1 when that channel found the item). */
  readonly recallFeatures: readonly string[];
}

/** What the later stages know about a candidate from recall. */
export interface RecallView {
  readonly itemId: string;
  readonly channels: readonly string[];
  readonly recallScore: number;
}

/** 0 when unknown, else clamp(year, year_min, year_max) - year_min + 1. */
export function yearBucket(year: number | undefined, yearMin: number, yearMax: number): number {
  if (year === undefined || !Number.isFinite(year)) return 0;
  return Math.min(yearMax, Math.max(yearMin, Math.round(year))) - yearMin + 1;
}

/**
 * The history rule shared with training: the user's events whose type is not
 * IMPRESSION, SKIP or DISLIKE, the last `maxLen` of them, oldest first. (A
 * served history holds only events before the request: "strictly before the
 * scored moment" holds by construction.)
 */
export function rankingHistory(history: readonly HistoryRow[], maxLen: number): string[] {
  const out: string[] = [];
  for (let i = history.length - 1; i >= 0 && out.length < maxLen; i--) {
    const e = history[i]!;
    if (e.type === EventType.IMPRESSION || e.type === EventType.SKIP || e.type === EventType.DISLIKE)
      continue;
    out.push(e.itemId);
  }
  return out.reverse();
}

/** An int64 tensor written through its low 32-bit words. */
class Int64Column {
  readonly words: Int32Array;
  constructor(readonly length: number) {
    this.words = new Int32Array(length * 2);
  }
  tensor(dims: number[]): TensorData {
    return { type: "int64", dims, data: this.words.buffer as ArrayBuffer };
  }
}

/** Destination of item rows: the hist_* or cand_* tensors of one request. */
interface ItemColumns {
  readonly item: Int64Column;
  /** The columns a model does not take are left out (and not written). */
  readonly genres?: Int64Column;
  readonly year?: Int64Column;
  readonly content?: Float32Array;
  readonly hasContent?: Float32Array;
}

/**
 * The per-item inputs of one model version, one row ("slot") per item of
 * the catalogue or the content table. A row is rebuilt when its item's
 * catalogue record or content vector was replaced since (both are replaced,
 * never mutated, on an item update), and items that arrive later get a row
 * when first seen; so the table needs no update hook and cannot miss an
 * update that came in while a new model version was loading. While neither
 * the catalogue nor the content table changes (their revisions), a row found
 * current stays current without looking the item up again.
 */
export class ItemFeatureTable {
  private readonly slots = new Map<string, number>();
  private records: Array<ItemRecord | undefined> = [];
  private vectors: Array<Float32Array | undefined> = [];
  private vocabIdx: Int32Array;
  private genres: Int32Array;
  private years: Int32Array;
  /** Per row, the catalogue + content table revision at which it was last found current. */
  private checked: Float64Array;
  /** Per row, how often it was (re)built: what is derived from a row (item vectors) keys on it. */
  private versions: Int32Array;
  private count = 0;
  private readonly G: number;

  constructor(
    readonly space: FeatureSpace,
    private readonly catalog: ItemCatalog,
    private readonly content: ContentTable,
  ) {
    this.G = space.maxGenres;
    const capacity = Math.max(1024, Math.ceil((catalog.size + 64) * 1.25));
    this.vocabIdx = new Int32Array(capacity);
    this.genres = new Int32Array(capacity * this.G);
    this.years = new Int32Array(capacity);
    this.checked = new Float64Array(capacity).fill(-1);
    this.versions = new Int32Array(capacity);
    for (const itemId of catalog.items.keys()) this.slotOf(itemId);
  }

  get size(): number {
    return this.count;
  }

  /** The item's vocabulary index (OOV when the model does not know it). */
  vocabIndex(itemId: string): number {
    return this.space.itemVocab.get(itemId) ?? OOV;
  }

  /** The item's row, (re)built when missing or stale; -1 for an item neither the catalogue nor the content table knows. */
  slotOf(itemId: string): number {
    let slot = this.slots.get(itemId);
    // nothing was upserted since this row was last found current: one lookup, not three
    const revision = this.catalog.revision + this.content.revision;
    if (slot !== undefined && this.checked[slot] === revision) return slot;
    const record = this.catalog.items.get(itemId);
    const vector = this.content.get(itemId);
    if (slot !== undefined) {
      if (this.records[slot] === record && this.vectors[slot] === vector) {
        this.checked[slot] = revision;
        return slot;
      }
    } else {
      if (!record && !vector) return -1;
      slot = this.count++;
      this.grow(this.count);
      this.slots.set(itemId, slot);
    }
    this.records[slot] = record;
    this.vectors[slot] = vector;
    this.vocabIdx[slot] = this.vocabIndex(itemId);
    const g0 = slot * this.G;
    this.genres.fill(PAD, g0, g0 + this.G);
    let g = 0;
    for (const genre of record?.genres ?? []) {
      if (g >= this.G) break;
      const idx = this.space.genreVocab.get(genre);
      if (idx !== undefined) this.genres[g0 + g++] = idx;
    }
    this.years[slot] = yearBucket(record?.year, this.space.yearMin, this.space.yearMax);
    this.checked[slot] = revision;
    this.versions[slot]!++;
    return slot;
  }

  /** The vocabulary index of the item at `slot` (slotOf), or of `itemId` when it has no row. */
  vocabIndexAt(slot: number, itemId: string): number {
    return slot >= 0 ? this.vocabIdx[slot]! : this.vocabIndex(itemId);
  }

  /** How often row `slot` was built (changes whenever its inputs do). */
  rowVersion(slot: number): number {
    return this.versions[slot]!;
  }

  private grow(needed: number): void {
    if (needed <= this.vocabIdx.length) return;
    const capacity = this.vocabIdx.length * 2;
    const vocabIdx = new Int32Array(capacity);
    vocabIdx.set(this.vocabIdx);
    const genres = new Int32Array(capacity * this.G);
    genres.set(this.genres);
    const years = new Int32Array(capacity);
    years.set(this.years);
    const checked = new Float64Array(capacity).fill(-1);
    checked.set(this.checked);
    this.checked = checked;
    const versions = new Int32Array(capacity);
    versions.set(this.versions);
    this.versions = versions;
    this.vocabIdx = vocabIdx;
    this.genres = genres;
    this.years = years;
  }

  /**
   * Writes `itemId` into row `row` of `out` (rows start zeroed: padding).
   * Returns whether the item is out of the model's vocabulary.
   */
  write(itemId: string, row: number, out: ItemColumns): boolean {
    const slot = this.slotOf(itemId);
    const G = this.G;
    const C = this.space.contentDim;
    if (slot < 0) {
      const idx = this.vocabIndex(itemId);
      out.item.words[row * 2] = idx;
      return idx === OOV;
    }
    const idx = this.vocabIdx[slot]!;
    out.item.words[row * 2] = idx;
    if (out.year) out.year.words[row * 2] = this.years[slot]!;
    if (out.genres) {
      const gw = out.genres.words;
      for (let g = 0, from = slot * G, to = row * G * 2; g < G; g++, to += 2) gw[to] = this.genres[from + g]!;
    }
    const vector = this.vectors[slot];
    if (out.content && vector && vector.length === C) {
      out.content.set(vector, row * C);
      if (out.hasContent) out.hasContent[row] = 1;
    }
    return idx === OOV;
  }
}

export interface RankingFeeds {
  readonly feeds: Record<string, TensorData>;
  /** Candidates out of the model's item vocabulary (scored through OOV index 1 and their content). */
  readonly oovCandidates: number;
  /** History items out of the vocabulary. */
  readonly oovHistory: number;
  /** History window length used (before padding). */
  readonly historyLength: number;
}

/** Optional parts of one request's feeds. */
export interface FeedOptions {
  /** Where the content columns (the large inputs) come from; the run gives them back. */
  readonly buffers?: BufferPool;
  /** The candidates' item vectors, for a model whose item tower runs ahead (requestVectors). */
  readonly itemVectors?: ItemVectors;
  /** The history window's item vectors (oldest first, unpadded), for a model that takes hist_item_vec. */
  readonly histVectors?: ItemVectors;
}

/** Item vectors of N candidates: `data` is [N, dim] row-major; `oov` counts those out of the vocabulary. */
export interface ItemVectors {
  readonly data: Float32Array;
  readonly dim: number;
  readonly oov: number;
}

type Floats = (n: number) => Float32Array;

function floatsFrom(buffers: BufferPool | undefined): Floats {
  return (n) => (buffers ? new Float32Array(buffers.take(n * 4), 0, n) : new Float32Array(n));
}

/**
 * The per-item candidate inputs (cand_item_idx, cand_genres, cand_year,
 * cand_content, cand_has_content) of `itemIds`, those in `wanted` only.
 * Nothing is written when none is wanted.
 */
export function buildItemFeeds(
  features: ItemFeatureTable,
  itemIds: readonly string[],
  wanted: ReadonlySet<string>,
  floats: Floats = floatsFrom(undefined),
  reusable = false,
): { readonly feeds: Record<string, TensorData>; readonly oov: number } {
  const { maxGenres: G, contentDim: C } = features.space;
  const N = itemIds.length;
  const feeds: Record<string, TensorData> = {};
  const any = ["cand_item_idx", "cand_genres", "cand_year", "cand_content", "cand_has_content"].some((n) =>
    wanted.has(n),
  );
  if (!any) return { feeds, oov: 0 };
  const withContent = wanted.has("cand_content") || wanted.has("cand_has_content");
  const cand: ItemColumns = {
    item: new Int64Column(N),
    ...(wanted.has("cand_genres") ? { genres: new Int64Column(N * G) } : {}),
    ...(wanted.has("cand_year") ? { year: new Int64Column(N) } : {}),
    ...(withContent ? { content: floats(N * C), hasContent: new Float32Array(N) } : {}),
  };
  let oov = 0;
  for (let i = 0; i < N; i++) if (features.write(itemIds[i]!, i, cand)) oov++;
  if (wanted.has("cand_item_idx")) feeds.cand_item_idx = cand.item.tensor([N]);
  if (cand.genres) feeds.cand_genres = cand.genres.tensor([N, G]);
  if (cand.year) feeds.cand_year = cand.year.tensor([N]);
  if (cand.content && wanted.has("cand_content"))
    feeds.cand_content = { ...float32Tensor(cand.content, [N, C]), reusable };
  if (cand.hasContent && wanted.has("cand_has_content"))
    feeds.cand_has_content = float32Tensor(cand.hasContent, [N]);
  return { feeds, oov };
}

/**
 * The feeds of one request: the user side once ([1, ...], the history
 * LEFT-padded to L) and every candidate in one batch ([N, ...]). Only the
 * inputs `spec` takes are built and returned.
 */
export function buildRankingFeeds(
  spec: RankingModelSpec,
  space: FeatureSpace,
  userVocab: ReadonlyMap<string, number>,
  features: ItemFeatureTable,
  user: UserView,
  candidates: readonly RecallView[],
  options: FeedOptions = {},
): RankingFeeds {
  const { maxHistLen: L, maxGenres: G, contentDim: C } = space;
  const N = candidates.length;
  const floats = floatsFrom(options.buffers);
  const reusable = options.buffers !== undefined;
  const wanted = new Set<string>(spec.inputs);
  const feeds: Record<string, TensorData> = {};

  if (wanted.has("user_idx")) {
    const userIdx = new Int64Column(1);
    userIdx.words[0] = userVocab.get(user.userId) ?? OOV;
    feeds.user_idx = userIdx.tensor([1]);
  }

  const window = rankingHistory(user.history, L);
  const hist: ItemColumns = {
    item: new Int64Column(L),
    ...(wanted.has("hist_genres") ? { genres: new Int64Column(L * G) } : {}),
    ...(wanted.has("hist_year") ? { year: new Int64Column(L) } : {}),
    ...(wanted.has("hist_content") ? { content: floats(L * C) } : {}),
  };
  let oovHistory = 0;
  for (let k = 0, row = L - window.length; k < window.length; k++, row++)
    if (features.write(window[k]!, row, hist)) oovHistory++;
  if (wanted.has("hist_item_idx")) feeds.hist_item_idx = hist.item.tensor([1, L]);
  if (hist.genres) feeds.hist_genres = hist.genres.tensor([1, L, G]);
  if (hist.year) feeds.hist_year = hist.year.tensor([1, L]);
  if (hist.content) feeds.hist_content = { ...float32Tensor(hist.content, [1, L, C]), reusable };
  if (wanted.has("hist_item_vec")) {
    const vectors = options.histVectors;
    const D = vectors?.dim ?? options.itemVectors?.dim ?? 0;
    if (window.length > 0 && (!vectors || vectors.data.length !== window.length * D))
      throw new Error(`${spec.model}: hist_item_vec needs the ${window.length} history items' vectors`);
    // LEFT-padded like the other history inputs: padding rows stay zero
    const data = new Float32Array(L * D);
    if (vectors) data.set(vectors.data, (L - window.length) * D);
    feeds.hist_item_vec = float32Tensor(data, [1, L, D]);
  }

  const items = buildItemFeeds(
    features,
    candidates.map((c) => c.itemId),
    wanted,
    floats,
    reusable,
  );
  Object.assign(feeds, items.feeds);
  let oovCandidates = items.oov;
  if (wanted.has("cand_item_vec")) {
    const vectors = options.itemVectors;
    if (!vectors || vectors.data.length !== N * vectors.dim)
      throw new Error(
        `${spec.model}: cand_item_vec needs the ${N} candidates' item vectors (ItemVectorTable)`,
      );
    feeds.cand_item_vec = float32Tensor(vectors.data, [N, vectors.dim]);
    oovCandidates += vectors.oov;
  }
  if (wanted.has("cand_recall")) {
    const R = space.recallFeatures.length;
    const out = new Float32Array(N * R);
    for (let j = 0; j < R; j++) {
      const name = space.recallFeatures[j]!;
      const channel = name.startsWith("channel:") ? name.slice("channel:".length) : undefined;
      for (let i = 0; i < N; i++) {
        const c = candidates[i]!;
        out[i * R + j] = channel === undefined ? c.recallScore : c.channels.includes(channel) ? 1 : 0;
      }
    }
    feeds.cand_recall = float32Tensor(out, [N, R]);
  }
  return { feeds, oovCandidates, oovHistory, historyLength: window.length };
}
