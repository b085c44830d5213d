/**
 * The generative channel's constrained beam search as an OnnxProgram: it runs
 * on the ONNX worker next to the model's session, so the four levels cost one
 * queue wait and one round trip, and none of the search's work runs on
 * recall's event loop. The code table (valid next codes per prefix, path ->
 * item) lives in SharedArrayBuffers that recall updates in place when an item
 * is upserted, so the worker always reads the current table without a copy.
 *
 * At each level every beam's valid continuations are scored by their log
 * probability (logits normalised over the valid codes only), and the best
 * `width` continuations, ties to the earlier (beam, code), become the next
 * beams. At the last level the excluded items (the user's history) are not
 * valid, so the final beams are unseen items, best first.
 */
import type { OnnxProgram, TensorData } from "@recsys/shared";

export interface BeamSearchArgs {
  /** Codes per level. */
  readonly levels: readonly number[];
  /** Token of code c at level l: offsets[l] + c. */
  readonly offsets: readonly number[];
  readonly vocabSize: number;
  readonly bos: number;
  readonly maxHistory: number;
  /** The history input, int64 tokens [1, maxHistory, levels] (moved to the worker). */
  readonly history: ArrayBuffer;
  /** Level l: valid codes after each prefix, [prod(K_<l), K_l] (shared). */
  readonly masks: readonly Uint8Array[];
  /** Full path index -> item index, -1 when free (shared). */
  readonly itemAtPath: Int32Array;
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

const beamSearch: OnnxProgram<BeamSearchArgs, BeamSearchResult> = async (ctx, args) => {
  const { levels, offsets, vocabSize, masks, itemAtPath, width } = args;
  const L = levels.length;
  const excluded = new Set(args.excluded);
  const history: TensorData = { type: "int64", dims: [1, args.maxHistory, L], data: args.history };
  // beams: their tokens [W, t], path prefix index and log-probability
  let W = 1;
  let tokens = new Int32Array([args.bos]);
  let flats = new Int32Array(1);
  let scores = new Float64Array(1);
  for (let level = 0, t = 1; level < L; level++, t++) {
    const k = levels[level]!;
    const off = offsets[level]!;
    const prefix = new Int32Array(W * t * 2); // int64 through the low words
    for (let i = 0; i < W * t; i++) prefix[i * 2] = tokens[i]!;
    const out = await ctx.infer({
      history,
      prefix: { type: "int64", dims: [W, t], data: prefix.buffer },
    });
    const logits = out.logits!.data as Float32Array;
    const mask = masks[level]!;
    const last = level === L - 1;
    const candScore = new Float64Array(W * k);
    const candBeam = new Int32Array(W * k);
    const candCode = new Int32Array(W * k);
    let n = 0;
    for (let b = 0; b < W; b++) {
      const row = b * vocabSize + off;
      const base = flats[b]! * k;
      const first = n;
      let max = NEG;
      for (let c = 0; c < k; c++) {
        if (!mask[base + c]) continue;
        if (last && excluded.has(itemAtPath[base + c]!)) continue;
        candBeam[n] = b;
        candCode[n++] = c;
        if (logits[row + c]! > max) max = logits[row + c]!;
      }
      if (n === first) continue;
      let sum = 0;
      for (let i = first; i < n; i++) sum += Math.exp(logits[row + candCode[i]!]! - max);
      const lse = max + Math.log(sum);
      for (let i = first; i < n; i++) candScore[i] = scores[b]! + logits[row + candCode[i]!]! - lse;
    }
    if (n === 0) return { value: { paths: new Int32Array(0), logProbs: new Float64Array(0) } };
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => candScore[b]! - candScore[a]! || a - b);
    const next = Math.min(width, n);
    const nextTokens = new Int32Array(next * (t + 1));
    const nextFlats = new Int32Array(next);
    const nextScores = new Float64Array(next);
    for (let j = 0; j < next; j++) {
      const i = order[j]!;
      const parent = candBeam[i]!;
      nextTokens.set(tokens.subarray(parent * t, (parent + 1) * t), j * (t + 1));
      nextTokens[j * (t + 1) + t] = off + candCode[i]!;
      nextFlats[j] = flats[parent]! * k + candCode[i]!;
      nextScores[j] = candScore[i]!;
    }
    W = next;
    tokens = nextTokens;
    flats = nextFlats;
    scores = nextScores;
  }
  return { value: { paths: flats, logProbs: scores }, transfer: [flats.buffer, scores.buffer] };
};

export default beamSearch;
