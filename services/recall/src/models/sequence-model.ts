/**
 * A sequence recall model (KuaiFormer, or the single-interest SASRec-like
 * baseline) as exported by services/trainer: the user encoder (ONNX), the
 * item embedding table, the item vocabulary, and an HNSW index over the item
 * embeddings built at load time. See docs/models.md for the artifact contract.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  EventType,
  type HistoryRow,
  int64Tensor,
  type ModelManifest,
  type OnnxPool,
  type TensorData,
} from "@recsys/shared";
import hnswlib from "hnswlib-node";

export const PAD = 0;
export const OOV = 1;

export interface SequenceModel {
  readonly name: string;
  readonly version: string;
  readonly modelPath: string;
  readonly maxSeqLen: number;
  readonly numInterests: number;
  readonly dim: number;
  /** item id -> vocab index */
  readonly vocab: Map<string, number>;
  /** vocab index -> item id ("" for padding and OOV rows) */
  readonly itemIds: string[];
  /** vocab_size x dim, row-major. */
  readonly embeddings: Float32Array;
  readonly index: hnswlib.HierarchicalNSW;
}

interface SignatureEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly (string | number)[];
}

export class ModelValidationError extends Error {}

const INPUTS = ["item_idx", "rating_bucket", "gap_bucket"] as const;

/** Bucket rules shared with the trainer (docs/models.md). */
export function ratingBucket(e: HistoryRow): number {
  switch (e.type) {
    case EventType.RATING:
      return Math.min(10, Math.max(1, Math.round(e.value * 2)));
    case EventType.CLICK:
      return 11;
    case EventType.LIKE:
      return 12;
    case EventType.WATCH:
      return 13;
    case EventType.SHARE:
      return 14;
    case EventType.SKIP:
      return 15;
    case EventType.DISLIKE:
      return 16;
    default:
      return 11;
  }
}

export function gapBucket(gapSeconds: number | undefined): number {
  if (gapSeconds === undefined) return 1;
  return 2 + Math.min(29, Math.floor(Math.log2(1 + Math.max(0, gapSeconds) / 60)));
}

export interface EncodedHistory {
  readonly feeds: Record<string, TensorData>;
  /** History events whose item is not in the vocabulary. */
  readonly oov: number;
}

/**
 * Left-padded [rows, L] int64 inputs for a batch of histories (oldest first;
 * the most recent event lands at position L-1). The oldest event of the
 * window gets gap bucket 1 whatever came before it (the trainer's rule).
 */
export function encodeHistories(
  model: SequenceModel,
  histories: readonly (readonly HistoryRow[])[],
): EncodedHistory {
  const L = model.maxSeqLen;
  const rows = histories.length;
  const item = new BigInt64Array(rows * L);
  const rating = new BigInt64Array(rows * L);
  const gap = new BigInt64Array(rows * L);
  let oov = 0;
  for (let r = 0; r < rows; r++) {
    const h = histories[r]!;
    const start = Math.max(0, h.length - L);
    const offset = r * L + (L - (h.length - start));
    for (let i = start; i < h.length; i++) {
      const e = h[i]!;
      const at = offset + (i - start);
      let idx = model.vocab.get(e.itemId);
      if (idx === undefined) {
        idx = OOV;
        oov++;
      }
      item[at] = BigInt(idx);
      rating[at] = BigInt(ratingBucket(e));
      const prev = i > start ? h[i - 1] : undefined;
      gap[at] = BigInt(gapBucket(prev ? (e.timestampMs - prev.timestampMs) / 1000 : undefined));
    }
  }
  return {
    feeds: {
      item_idx: int64Tensor(item, [rows, L]),
      rating_bucket: int64Tensor(rating, [rows, L]),
      gap_bucket: int64Tensor(gap, [rows, L]),
    },
    oov,
  };
}

function checkSignature(manifest: ModelManifest): { L: number; K: number; D: number; vocabSize: number } {
  const sig = manifest.signature as { inputs?: SignatureEntry[]; outputs?: SignatureEntry[] } | undefined;
  const L = Number(manifest.max_seq_len);
  const K = Number(manifest.num_interests);
  const D = Number(manifest.embedding_dim);
  const vocabSize = Number(manifest.vocab_size);
  for (const [k, v] of Object.entries({
    max_seq_len: L,
    num_interests: K,
    embedding_dim: D,
    vocab_size: vocabSize,
  })) {
    if (!Number.isInteger(v) || v <= 0)
      throw new ModelValidationError(`manifest.${k} must be a positive integer`);
  }
  if (!sig?.inputs || !sig.outputs) throw new ModelValidationError("manifest.signature is missing");
  for (const name of INPUTS) {
    const input = sig.inputs.find((i) => i.name === name);
    if (!input) throw new ModelValidationError(`signature: input ${name} missing`);
    if (input.dtype !== "int64" || input.shape.length !== 2 || Number(input.shape[1]) !== L) {
      throw new ModelValidationError(`signature: input ${name} must be int64 [batch, ${L}]`);
    }
  }
  const out = sig.outputs.find((o) => o.name === "interests");
  if (out?.dtype !== "float32" || Number(out.shape[1]) !== K || Number(out.shape[2]) !== D) {
    throw new ModelValidationError(`signature: output interests must be float32 [batch, ${K}, ${D}]`);
  }
  return { L, K, D, vocabSize };
}

export interface LoadOptions {
  readonly hnswM?: number;
  readonly efConstruction?: number;
  readonly efSearch?: number;
}

/** Loads and validates a version directory; throws ModelValidationError when anything is off. */
export async function loadSequenceModel(
  name: string,
  dir: string,
  manifest: ModelManifest,
  pool: OnnxPool,
  options: LoadOptions = {},
): Promise<SequenceModel> {
  const { L, K, D, vocabSize } = checkSignature(manifest);
  const vocabText = readFileSync(join(dir, "item_vocab.tsv"), "utf8");
  if (
    manifest.item_vocab_sha256 &&
    createHash("sha256").update(vocabText).digest("hex") !== manifest.item_vocab_sha256
  ) {
    throw new ModelValidationError("item_vocab.tsv does not match manifest.item_vocab_sha256");
  }
  const itemIds: string[] = new Array(vocabSize).fill("");
  const vocab = new Map<string, number>();
  const lines = vocabText.split("\n");
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!;
    if (!line) continue;
    const [indexText = "", itemId = ""] = line.split("\t");
    const index = Number(indexText);
    if (!Number.isInteger(index) || index < 2 || index >= vocabSize || !itemId) {
      throw new ModelValidationError(`item_vocab.tsv line ${k + 1}: bad entry`);
    }
    itemIds[index] = itemId;
    vocab.set(itemId, index);
  }
  const raw = readFileSync(join(dir, "item_embeddings.f32"));
  if (raw.byteLength !== vocabSize * D * 4) {
    throw new ModelValidationError(
      `item_embeddings.f32 has ${raw.byteLength} bytes, expected ${vocabSize}x${D} float32`,
    );
  }
  const embeddings = new Float32Array(new Uint8Array(raw).buffer);
  for (let i = 0; i < embeddings.length; i++) {
    if (!Number.isFinite(embeddings[i]!))
      throw new ModelValidationError("item_embeddings.f32 has non-finite values");
  }

  const model: SequenceModel = {
    name,
    version: manifest.version,
    modelPath: join(dir, "model.onnx"),
    maxSeqLen: L,
    numInterests: K,
    dim: D,
    vocab,
    itemIds,
    embeddings,
    index: new hnswlib.HierarchicalNSW("ip", D),
  };

  // Probe batch: two sequences (one short, one full) must give finite [2, K, D] outputs.
  const probeItems = [...vocab.keys()].slice(0, L + 1);
  const probe = (ids: string[]): HistoryRow[] =>
    ids.map((itemId, i) => ({
      itemId,
      timestampMs: 1_000_000 + i * 60_000,
      type: EventType.RATING,
      value: 4,
    }));
  const { feeds } = encodeHistories(model, [probe(probeItems.slice(0, 3)), probe(probeItems)]);
  let result: Awaited<ReturnType<OnnxPool["run"]>>;
  try {
    result = await pool.run(model.modelPath, feeds);
  } catch (err) {
    throw new ModelValidationError(`probe batch failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const out = result.outputs.interests;
  if (!out || out.dims.join(",") !== `2,${K},${D}`) {
    throw new ModelValidationError(
      `probe output interests has dims [${out?.dims.join(",")}], expected [2,${K},${D}]`,
    );
  }
  const values = new Float32Array(out.data);
  if (!values.every(Number.isFinite)) throw new ModelValidationError("probe output has non-finite values");

  // HNSW over the item embeddings (rows 0 and 1 are padding and OOV).
  const M = options.hnswM ?? 16;
  model.index.initIndex(Math.max(1, vocabSize - 2), M, options.efConstruction ?? 200, 100);
  // Built in small slices that yield to the event loop: during a hot swap the
  // service keeps answering with the old version while this one is built.
  const row = new Array<number>(D);
  for (let i = 2; i < vocabSize; i++) {
    if (!itemIds[i]) continue;
    for (let d = 0; d < D; d++) row[d] = embeddings[i * D + d]!;
    model.index.addPoint(row, i);
    if (i % 32 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  model.index.setEf(options.efSearch ?? 200);
  return model;
}

/** Exact top-k by inner product (for evaluation of the HNSW index). */
export function bruteForceTopK(
  model: SequenceModel,
  query: Float32Array,
  k: number,
  exclude: ReadonlySet<number>,
): number[] {
  const D = model.dim;
  const scores: Array<[number, number]> = [];
  for (let i = 2; i < model.itemIds.length; i++) {
    if (!model.itemIds[i] || exclude.has(i)) continue;
    let s = 0;
    for (let d = 0; d < D; d++) s += query[d]! * model.embeddings[i * D + d]!;
    scores.push([i, s]);
  }
  scores.sort((a, b) => b[1] - a[1]);
  return scores.slice(0, k).map(([i]) => i);
}
