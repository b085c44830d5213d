/**
 * Pure tensor helpers for the sentence encoder: right-padded int64 batches
 * and attention-mask mean pooling with L2 normalisation. No model files
 * needed, so these are unit-tested on their own.
 */

export interface PaddedBatch {
  /** [rows, seqLen] token ids, 0 ([PAD]) after each row's tokens. */
  readonly inputIds: BigInt64Array;
  /** [rows, seqLen] 1 for real tokens, 0 for padding. */
  readonly attentionMask: BigInt64Array;
  /** [rows, seqLen] all 0 (single-sequence inputs). */
  readonly tokenTypeIds: BigInt64Array;
  readonly rows: number;
  readonly seqLen: number;
}

/** Right-pads token id rows to the longest row with `padId`. */
export function padBatch(rows: readonly (readonly number[])[], padId = 0): PaddedBatch {
  let seqLen = 0;
  for (const r of rows) seqLen = Math.max(seqLen, r.length);
  const n = rows.length;
  const inputIds = new BigInt64Array(n * seqLen);
  const attentionMask = new BigInt64Array(n * seqLen);
  const tokenTypeIds = new BigInt64Array(n * seqLen);
  const pad = BigInt(padId);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    const base = i * seqLen;
    for (let j = 0; j < seqLen; j++) {
      if (j < r.length) {
        inputIds[base + j] = BigInt(r[j]!);
        attentionMask[base + j] = 1n;
      } else {
        inputIds[base + j] = pad;
      }
    }
  }
  return { inputIds, attentionMask, tokenTypeIds, rows: n, seqLen };
}

/**
 * Attention-mask mean pooling of `hidden` ([rows, seqLen, dim], float32),
 * each pooled row L2-normalised (divided by max(norm, 1e-12), like
 * torch.nn.functional.normalize) and written to row `outRows[i]` of `out`.
 * Rows are right-padded, so row i's mask is `lengths[i]` ones then zeros.
 * Sums run in float64, as the Python reference does.
 */
export function meanPoolNormalize(
  hidden: Float32Array,
  lengths: readonly number[],
  seqLen: number,
  dim: number,
  out: Float32Array,
  outRows: readonly number[],
): void {
  const rows = lengths.length;
  if (hidden.length !== rows * seqLen * dim) {
    throw new Error(`hidden state has ${hidden.length} values, expected ${rows}x${seqLen}x${dim}`);
  }
  const acc = new Float64Array(dim);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    const count = Math.min(lengths[i]!, seqLen);
    for (let j = 0; j < count; j++) {
      const base = (i * seqLen + j) * dim;
      for (let k = 0; k < dim; k++) acc[k] = acc[k]! + hidden[base + k]!;
    }
    const denom = Math.max(count, 1e-9);
    let sq = 0;
    for (let k = 0; k < dim; k++) {
      const m = acc[k]! / denom;
      acc[k] = m;
      sq += m * m;
    }
    const inv = 1 / Math.max(Math.sqrt(sq), 1e-12);
    const dst = outRows[i]! * dim;
    for (let k = 0; k < dim; k++) out[dst + k] = acc[k]! * inv;
  }
}

/** Cosine similarity of two rows of L2-normalised vectors (their dot product). */
export function dotRows(a: Float32Array, ai: number, b: Float32Array, bi: number, dim: number): number {
  let s = 0;
  for (let k = 0; k < dim; k++) s += a[ai * dim + k]! * b[bi * dim + k]!;
  return s;
}
