/**
 * The generative retrieval model (TIGER / OneRec style) as exported by
 * services/trainer (recsys_trainer/generative.py; docs/models.md): every item
 * has a semantic ID, a path of codes (c1, c2, c3, k); the ONNX graph reads
 * the user's last items as codes and gives the logits of the next code of
 * each beam. This module holds the code table (which paths exist, which item
 * each names) and the quantiser that gives an item upserted at serving its
 * path from its content vector alone.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Metrics, ModelManifest, OnnxPool } from "@recsys/shared";
import type { BeamSearchArgs, BeamSearchResult } from "./generative-search.js";
import { ModelValidationError } from "./sequence-model.js";

export interface GenerativeProbe {
  readonly history: readonly string[];
  readonly top: readonly string[];
  readonly log_probs: readonly number[];
}

export interface QuantiserProbe {
  readonly item_id: string;
  readonly codes: readonly number[];
}

export interface GenerativeModel {
  readonly version: string;
  /** encoder.onnx: the history -> the first level's logits and the decoder's cached keys/values. */
  readonly encoderPath: string;
  /** step.onnx: one more level for every beam, from the cached keys/values. */
  readonly stepPath: string;
  /** Codes per level; the last level tells apart the items that share the others. */
  readonly levels: readonly number[];
  /** Token of code c at level l: offsets[l] + c. */
  readonly offsets: readonly number[];
  readonly vocabSize: number;
  readonly maxHistory: number;
  /** item id -> its codes. */
  readonly codeOf: Map<string, Int32Array>;
  /** Full path index ((c1 * K2 + c2) * K3 + c3) * K4 + k -> item, -1 when free. */
  readonly itemAtPath: Int32Array;
  /** Items named by itemAtPath. */
  readonly itemIds: string[];
  /** Level l: valid codes after each prefix, [prod(K_<l), K_l] (1 = a path continues there). */
  readonly masks: Uint8Array[];
  readonly quantiser: Quantiser;
  readonly probes: readonly GenerativeProbe[];
  readonly quantiserProbes: readonly QuantiserProbe[];
}

interface Quantiser {
  readonly contentDim: number;
  readonly mean: Float32Array;
  /** [P, contentDim] */
  readonly pca: Float32Array;
  /** [R, contentDim] */
  readonly ridge: Float32Array;
  readonly pcaRows: number;
  readonly ridgeRows: number;
  readonly contentWeight: number;
  /** Level l: [K_l, P + R] for the levels before the collision level. */
  readonly codebooks: Float32Array[];
}

function positiveInt(v: unknown, field: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new ModelValidationError(`manifest.${field} must be a positive integer`);
  return n;
}

function floats(path: string, count: number, what: string): Float32Array {
  const raw = readFileSync(path);
  if (raw.byteLength !== count * 4)
    throw new ModelValidationError(`${what} has ${raw.byteLength} bytes, expected ${count} float32`);
  const out = new Float32Array(new Uint8Array(raw).buffer);
  if (!out.every(Number.isFinite)) throw new ModelValidationError(`${what} has non-finite values`);
  return out;
}

/** Index of the path prefix made of the first `upTo` codes. */
function prefixIndex(levels: readonly number[], codes: ArrayLike<number>, upTo: number): number {
  let flat = 0;
  for (let l = 0; l < upTo; l++) flat = flat * levels[l]! + codes[l]!;
  return flat;
}

/** The item's full path index (its row of itemAtPath), -1 when it has no semantic ID. */
export function pathOf(model: GenerativeModel, itemId: string): number {
  const codes = model.codeOf.get(itemId);
  return codes ? prefixIndex(model.levels, codes, model.levels.length) : -1;
}

/** Records item `item` on its path: the masks of every level and the path -> item table. */
function place(model: GenerativeModel, codes: Int32Array, item: number): void {
  const { levels } = model;
  for (let l = 0; l < levels.length; l++) {
    model.masks[l]![prefixIndex(levels, codes, l) * levels[l]! + codes[l]!] = 1;
  }
  model.itemAtPath[prefixIndex(levels, codes, levels.length)] = item;
}

export async function loadGenerativeModel(
  dir: string,
  manifest: ModelManifest,
  pool: OnnxPool,
): Promise<GenerativeModel> {
  const levels = (Array.isArray(manifest.levels) ? manifest.levels : []).map((k, l) =>
    positiveInt(k, `levels[${l}]`),
  );
  if (levels.length < 2) throw new ModelValidationError("manifest.levels must list at least two levels");
  const offsets = (Array.isArray(manifest.token_offsets) ? manifest.token_offsets : []).map(Number);
  const vocabSize = positiveInt(manifest.vocab_size, "vocab_size");
  const maxHistory = positiveInt(manifest.max_history, "max_history");
  const bos = Number(manifest.bos_token);
  if (offsets.length !== levels.length || offsets.some((o, l) => o + levels[l]! > vocabSize || o <= bos))
    throw new ModelValidationError(
      "manifest.token_offsets must give each level a token range inside vocab_size",
    );
  const paths = levels.reduce((a, b) => a * b, 1);
  if (paths > 1 << 26) throw new ModelValidationError(`manifest.levels name ${paths} paths (at most 2^26)`);

  const q = manifest.quantiser as
    | {
        projection?: { rows?: { mean?: number; pca?: number; ridge?: number }; content_dim?: number };
        content_weight?: number;
      }
    | undefined;
  const contentDim = positiveInt(q?.projection?.content_dim, "quantiser.projection.content_dim");
  const pcaRows = positiveInt(q?.projection?.rows?.pca, "quantiser.projection.rows.pca");
  const ridgeRows = positiveInt(q?.projection?.rows?.ridge, "quantiser.projection.rows.ridge");
  const projection = floats(
    join(dir, "projection.f32"),
    (1 + pcaRows + ridgeRows) * contentDim,
    "projection.f32",
  );
  const space = pcaRows + ridgeRows;
  const bookRows = levels.slice(0, -1).reduce((a, b) => a + b, 0);
  const books = floats(join(dir, "codebooks.f32"), bookRows * space, "codebooks.f32");
  const codebooks: Float32Array[] = [];
  for (let l = 0, at = 0; l < levels.length - 1; at += levels[l]! * space, l++)
    codebooks.push(books.subarray(at, at + levels[l]! * space));
  const quantiser: Quantiser = {
    contentDim,
    mean: projection.subarray(0, contentDim),
    pca: projection.subarray(contentDim, (1 + pcaRows) * contentDim),
    ridge: projection.subarray((1 + pcaRows) * contentDim),
    pcaRows,
    ridgeRows,
    contentWeight: Number(q?.content_weight ?? 1),
    codebooks,
  };

  const model: GenerativeModel = {
    version: manifest.version,
    encoderPath: join(dir, "encoder.onnx"),
    stepPath: join(dir, "step.onnx"),
    levels,
    offsets,
    vocabSize,
    maxHistory,
    codeOf: new Map(),
    // shared with the ONNX worker that runs the beam search (generative-search.ts); upserts write in place
    itemAtPath: new Int32Array(new SharedArrayBuffer(paths * 4)).fill(-1),
    itemIds: [],
    masks: levels.map(
      (k, l) => new Uint8Array(new SharedArrayBuffer(levels.slice(0, l).reduce((a, b) => a * b, 1) * k)),
    ),
    quantiser,
    probes: (manifest.probes as GenerativeProbe[] | undefined) ?? [],
    quantiserProbes: (manifest.quantiser_probes as QuantiserProbe[] | undefined) ?? [],
  };
  const lines = readFileSync(join(dir, "codes.tsv"), "utf8").split("\n");
  for (let n = 1; n < lines.length; n++) {
    const line = lines[n]!;
    if (!line) continue;
    const [itemId = "", ...rest] = line.split("\t");
    const codes = Int32Array.from(rest, Number);
    if (!itemId || codes.length !== levels.length || codes.some((c, l) => !(c >= 0 && c < levels[l]!)))
      throw new ModelValidationError(`codes.tsv line ${n + 1}: bad entry`);
    const path = prefixIndex(levels, codes, levels.length);
    if (model.itemAtPath[path]! >= 0)
      throw new ModelValidationError(`codes.tsv line ${n + 1}: path taken twice`);
    model.codeOf.set(itemId, codes);
    place(model, codes, model.itemIds.push(itemId) - 1);
  }
  if (model.codeOf.size === 0) throw new ModelValidationError("codes.tsv names no item");

  // Probe: a search for a short history must run both graphs and give items with finite scores.
  try {
    const got = await generate(model, pool, [...model.codeOf.keys()].slice(0, 3), 5);
    if (got.length === 0) throw new Error("no items generated");
    if (!got.every((g) => Number.isFinite(g.logProb))) throw new Error("non-finite log-probabilities");
  } catch (err) {
    throw new ModelValidationError(`probe failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return model;
}

/**
 * The history input: the last max_history events (left-padded; an item without a semantic ID stays
 * padding in its place, as in training), as tokens [1, H, L].
 */
export function encodeHistory(model: GenerativeModel, historyItemIds: readonly string[]): BigInt64Array {
  const H = model.maxHistory;
  const L = model.levels.length;
  const history = new BigInt64Array(H * L);
  const words = new Int32Array(history.buffer); // tokens are small and non-negative: the low words
  const n = Math.min(H, historyItemIds.length);
  for (let j = 0; j < n; j++) {
    const codes = model.codeOf.get(historyItemIds[historyItemIds.length - n + j]!);
    if (!codes) continue;
    const at = (H - n + j) * L;
    for (let l = 0; l < L; l++) words[(at + l) * 2] = model.offsets[l]! + codes[l]!;
  }
  return history;
}

export interface GeneratedItem {
  readonly itemId: string;
  /** Log-probability of the item's code path. */
  readonly logProb: number;
}

/** The beam search, run on the ONNX worker next to the sessions (generative-search.ts). */
const SEARCH = new URL("./generative-search.js", import.meta.url);

/**
 * Constrained beam search: `width` items the model generates for a history (oldest first), best
 * first, none of the history's items among them. One task on the worker pool runs all the levels.
 */
export async function generate(
  model: GenerativeModel,
  pool: OnnxPool,
  history: readonly string[],
  width: number,
  metrics?: Metrics,
): Promise<GeneratedItem[]> {
  const { itemAtPath, itemIds } = model;
  const excluded: number[] = [];
  for (const itemId of new Set(history)) {
    const path = pathOf(model, itemId);
    if (path >= 0) excluded.push(itemAtPath[path]!);
  }
  const args: BeamSearchArgs = {
    encoderPath: model.encoderPath,
    stepPath: model.stepPath,
    levels: model.levels,
    offsets: model.offsets,
    vocabSize: model.vocabSize,
    maxHistory: model.maxHistory,
    history: encodeHistory(model, history).buffer as ArrayBuffer,
    masks: model.masks,
    itemAtPath,
    excluded,
    width,
  };
  const result = await pool.runProgram<BeamSearchArgs, BeamSearchResult>(SEARCH, args, [args.history]);
  // one observation per search: the inference time of all its levels
  metrics?.onnxInference.observe(
    { model: "generative", provider: result.provider },
    result.inferenceMs / 1000,
  );
  const { paths, logProbs } = result.value;
  return Array.from(paths, (path, i) => ({ itemId: itemIds[itemAtPath[path]!]!, logProb: logProbs[i]! }));
}

/** Codes of the levels before the collision level, from a content vector (the trainer's rule for cold items). */
export function quantise(model: GenerativeModel, content: ArrayLike<number>): Int32Array {
  const q = model.quantiser;
  const D = q.contentDim;
  const centred = new Float64Array(D);
  for (let d = 0; d < D; d++) centred[d] = content[d]! - q.mean[d]!;
  const x = new Float64Array(q.pcaRows + q.ridgeRows);
  const project = (rows: Float32Array, n: number, at: number, weight: number) => {
    let norm = 0;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += rows[r * D + d]! * centred[d]!;
      x[at + r] = s;
      norm += s * s;
    }
    const scale = weight / Math.max(Math.sqrt(norm), 1e-12);
    for (let r = 0; r < n; r++) x[at + r]! *= scale;
  };
  project(q.pca, q.pcaRows, 0, q.contentWeight);
  project(q.ridge, q.ridgeRows, q.pcaRows, 1);
  const codes = new Int32Array(q.codebooks.length);
  const S = x.length;
  q.codebooks.forEach((book, l) => {
    let best = 0;
    let bestD = Number.POSITIVE_INFINITY;
    for (let k = 0; k < book.length / S; k++) {
      let dist = 0;
      for (let s = 0; s < S; s++) {
        const diff = x[s]! - book[k * S + s]!;
        dist += diff * diff;
      }
      if (dist < bestD) {
        bestD = dist;
        best = k;
      }
    }
    codes[l] = best;
    for (let s = 0; s < S; s++) x[s]! -= book[best * S + s]!;
  });
  return codes;
}

/**
 * Gives a new item a semantic ID from its content vector: the quantiser's codes and the first free
 * slot of the collision level. Returns its codes, the codes it already had, or undefined when every
 * slot of its path is taken.
 */
export function addItem(
  model: GenerativeModel,
  itemId: string,
  content: ArrayLike<number>,
): Int32Array | undefined {
  const known = model.codeOf.get(itemId);
  if (known) return known;
  if (content.length !== model.quantiser.contentDim) return undefined;
  const head = quantise(model, content);
  const L = model.levels.length;
  const codes = new Int32Array(L);
  codes.set(head);
  const base = prefixIndex(model.levels, codes, L - 1) * model.levels[L - 1]!;
  for (let k = 0; k < model.levels[L - 1]!; k++) {
    if (model.itemAtPath[base + k]! >= 0) continue;
    codes[L - 1] = k;
    model.codeOf.set(itemId, codes);
    place(model, codes, model.itemIds.push(itemId) - 1);
    return codes;
  }
  return undefined;
}
