/**
 * The generative channel's constrained beam search as an OnnxProgram: it runs
 * on the ONNX worker next to the model's sessions, so a search costs one
 * queue wait and one round trip, and none of its work runs on recall's event
 * loop. The code table (valid next codes per prefix, path -> item) lives in
 * SharedArrayBuffers that recall updates in place when an item is upserted,
 * so the worker always reads the current table without a copy.
 *
 * The decoder runs with cached keys and values: encoder.onnx reads the
 * history once and gives the first level's logits, and each later level is
 * one step.onnx run that feeds only the newest token of every beam (with the
 * index of the beam it continues), not the whole prefix again.
 *
 * At each level every beam's valid continuations are scored by their log
 * probability (logits normalised over the valid codes only), and the best
 * `width` continuations, ties to the earlier (beam, code), become the next
 * beams. At the last level the excluded items (the user's history) are not
 * valid, so the final beams are unseen items, best first.
 */
import type { OnnxProgram, OutputView, TensorData } from "@recsys/shared";
import type { GenerativeModel } from "./generative-model.js";

/** The model's code table and sizes (shared with the worker), and one request's history and width. */
export interface BeamSearchArgs
  extends Pick<
    GenerativeModel,
    "encoderPath" | "stepPath" | "levels" | "offsets" | "vocabSize" | "maxHistory" | "masks" | "itemAtPath"
  > {
  /** The history input, int64 tokens [1, maxHistory, levels] (moved to the worker). */
  readonly history: ArrayBuffer;
  /** Item indices that may not be generated. */
  readonly excluded: readonly number[];
  readonly width: number;
}

export interface BeamSearchResult {
  /** Full path index of each final beam, best first. */
  readonly paths: Int32Array;
  /** Log-probability of each path. */
  readonly logProbs: Float64Array;
}

const NEG = -1e30;

/** An int64 tensor of small non-negative values, written through the low 32-bit words. */
function int64(values: ArrayLike<number>, dims: number[]): TensorData {
  const words = new Int32Array(values.length * 2);
  for (let i = 0; i < values.length; i++) words[i * 2] = values[i]!;
  return { type: "int64", dims, data: words.buffer };
}

/**
 * Indices of the `width` best of scores[0..n), best first, ties to the lower index: a bounded heap
 * (n log width), since a level has up to width x K candidates and keeps width of them.
 */
export function best(scores: Float64Array, n: number, width: number): Uint32Array {
  // a before b in the answer
  const before = (a: number, b: number) => scores[a]! > scores[b]! || (scores[a] === scores[b] && a < b);
  const size = Math.min(width, n);
  const heap = new Uint32Array(size); // heap[0] is the worst kept
  const down = (from: number) => {
    for (let i = from; ; ) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      const worse = r < size && before(heap[l]!, heap[r]!) ? r : l;
      if (!before(heap[i]!, heap[worse]!)) return;
      [heap[i], heap[worse]] = [heap[worse]!, heap[i]!];
      i = worse;
    }
  };
  for (let i = 0; i < size; i++) heap[i] = i;
  for (let i = (size >> 1) - 1; i >= 0; i--) down(i);
  for (let i = size; i < n; i++) {
    if (!before(i, heap[0]!)) continue;
    heap[0] = i;
    down(0);
  }
  return heap.sort((a, b) => (before(a, b) ? -1 : 1));
}

const beamSearch: OnnxProgram<BeamSearchArgs, BeamSearchResult> = async (ctx, args) => {
  const { levels, offsets, vocabSize, masks, itemAtPath, width } = args;
  const L = levels.length;
  const excluded = new Set(args.excluded);
  const history: TensorData = { type: "int64", dims: [1, args.maxHistory, L], data: args.history };
  const first = await ctx.infer(args.encoderPath, { history });
  if (first.logits?.dims.join(",") !== `1,${vocabSize}`)
    throw new Error(
      `encoder.onnx: logits has dims [${first.logits?.dims.join(",")}], expected [1,${vocabSize}]`,
    );
  const memory = { memory_k: first.memory_k!, memory_v: first.memory_v!, memory_bias: first.memory_bias! };
  let logits = first.logits!.data as Float32Array;
  let past: { k: OutputView; v: OutputView } = { k: first.past_k!, v: first.past_v! };
  // beams: their path prefix index and log-probability
  let W = 1;
  let flats = new Int32Array(1);
  let scores = new Float64Array(1);
  for (let level = 0; level < L; level++) {
    const k = levels[level]!;
    const off = offsets[level]!;
    const mask = masks[level]!;
    const last = level === L - 1;
    const candScore = new Float64Array(W * k);
    const candBeam = new Int32Array(W * k);
    const candCode = new Int32Array(W * k);
    let n = 0;
    for (let b = 0; b < W; b++) {
      const row = b * vocabSize + off;
      const base = flats[b]! * k;
      const start = n;
      let max = NEG;
      for (let c = 0; c < k; c++) {
        if (!mask[base + c]) continue;
        if (last && excluded.has(itemAtPath[base + c]!)) continue;
        candBeam[n] = b;
        candCode[n++] = c;
        if (logits[row + c]! > max) max = logits[row + c]!;
      }
      if (n === start) continue;
      let sum = 0;
      for (let i = start; i < n; i++) sum += Math.exp(logits[row + candCode[i]!]! - max);
      const lse = max + Math.log(sum);
      for (let i = start; i < n; i++) candScore[i] = scores[b]! + logits[row + candCode[i]!]! - lse;
    }
    if (n === 0) return { value: { paths: new Int32Array(0), logProbs: new Float64Array(0) } };
    const order = best(candScore, n, width);
    const next = order.length;
    const parents = new Int32Array(next);
    const tokens = new Int32Array(next);
    const nextFlats = new Int32Array(next);
    const nextScores = new Float64Array(next);
    for (let j = 0; j < next; j++) {
      const i = order[j]!;
      parents[j] = candBeam[i]!;
      tokens[j] = off + candCode[i]!;
      nextFlats[j] = flats[candBeam[i]!]! * k + candCode[i]!;
      nextScores[j] = candScore[i]!;
    }
    W = next;
    flats = nextFlats;
    scores = nextScores;
    if (last) break;
    // the next level's logits: each new beam continues its parent's cached keys/values with its token
    const out = await ctx.infer(args.stepPath, {
      token: int64(tokens, [W]),
      parent: int64(parents, [W]),
      step: int64([level + 1], [1]),
      past_k: past.k,
      past_v: past.v,
      ...memory,
    });
    logits = out.logits!.data as Float32Array;
    past = { k: out.present_k!, v: out.present_v! };
  }
  return { value: { paths: flats, logProbs: scores }, transfer: [flats.buffer, scores.buffer] };
};

export default beamSearch;
