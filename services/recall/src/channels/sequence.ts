import {
  type Candidate,
  type CandidateSource,
  type Metrics,
  type ModelWatcher,
  newCandidate,
  type OnnxPool,
  type StageContext,
} from "@recsys/shared";
import { encodeHistories, type SequenceModel } from "../models/sequence-model.js";

/**
 * Transformer recall (KuaiFormer; the same class serves the single-interest
 * SASRec baseline): the user's recent sequence goes through the ONNX user
 * encoder on a worker thread; each of the k interest vectors queries the item
 * HNSW index for `overFetch` x quota/k items; the results are merged by their
 * best interest score, items already in the history dropped, and the best
 * `quota` kept (interests overlap, so quota/k each would leave the merged set
 * well short of the quota). The reason is the most similar of the user's
 * last `reasonWindow` (10) history items to the recalled item. It is computed
 * for every recalled item (~1,000 per request, before prerank chooses), so
 * the window is kept short: with 30 items the reasons cost ~3.5 ms per request
 * at p50, with 10 ~1.3 ms (retrieve-bench, docs/benchmarks.md).
 */
export class SequenceCandidateSource implements CandidateSource {
  constructor(
    readonly id: string,
    private readonly watcher: ModelWatcher<SequenceModel>,
    private readonly pool: OnnxPool,
    private readonly metrics?: Metrics,
    private readonly reasonWindow = 10,
  ) {}

  get version(): string | undefined {
    return this.watcher.current()?.version;
  }

  async fetch(ctx: StageContext, quota: number): Promise<Candidate[]> {
    const loaded = this.watcher.current();
    if (!loaded) throw new Error(`${this.id}: no model version loaded`);
    const history = ctx.user.history;
    if (history.length === 0) return [];
    const model = loaded.value;
    const { feeds, oov } = encodeHistories(model, [history]);
    if (oov > 0) this.metrics?.degradations.inc({ kind: `${this.id}_oov_history_items` }, oov);
    // No abort signal here: piscina aborts a running task by terminating its worker
    // thread, and tearing down a thread inside ONNX Runtime's run() kills the process.
    // A late result is simply dropped by the channel's timeout.
    const result = await this.pool.run(model.modelPath, feeds);
    this.metrics?.onnxInference.observe(
      { model: this.id, provider: result.provider },
      result.inferenceMs / 1000,
    );
    const out = result.outputs.interests;
    if (!out) throw new Error(`${this.id}: model gave no interests output`);
    const interests = new Float32Array(out.data);
    return retrieve(
      model,
      interests,
      history.map((e) => e.itemId),
      quota,
      this.id,
      this.reasonWindow,
    );
  }
}

/**
 * HNSW retrieval for each interest, merged by best score; exported for evaluation.
 * The search itself is unfiltered: a JS filter callback runs for every node the
 * search visits (it was 41% of recall's main thread under load), so each
 * interest asks for as many extra items as the history could remove and the
 * seen ones are dropped afterwards.
 */
export function retrieve(
  model: SequenceModel,
  interests: Float32Array,
  historyItemIds: readonly string[],
  quota: number,
  channel: string,
  reasonWindow = 10,
  overFetch = 2,
): Candidate[] {
  const { numInterests: K, dim: D } = model;
  const seen = new Set<number>();
  for (const id of historyItemIds) {
    const idx = model.vocab.get(id);
    if (idx !== undefined) seen.add(idx);
  }
  const perInterest = Math.max(1, Math.ceil((quota * (K > 1 ? overFetch : 1)) / K));
  const k = Math.min(perInterest + seen.size, model.index.getCurrentCount());
  const best = new Map<number, number>();
  const query = new Array<number>(D);
  for (let i = 0; i < K; i++) {
    if (k === 0) break;
    for (let d = 0; d < D; d++) query[d] = interests[i * D + d]!;
    const { neighbors, distances } = model.index.searchKnn(query, k);
    for (let n = 0, kept = 0; n < neighbors.length && kept < perInterest; n++) {
      const label = neighbors[n]!;
      if (seen.has(label)) continue;
      kept++;
      const score = 1 - distances[n]!; // "ip" space distance is 1 - inner product
      const prev = best.get(label);
      if (prev === undefined || score > prev) best.set(label, score);
    }
  }
  const ranked = [...best.entries()].sort((a, b) => b[1] - a[1]).slice(0, quota);
  if (ranked.length === 0) return [];
  const top = ranked[0]![1];
  const bottom = Math.min(...ranked.map(([, s]) => s));
  const span = top - bottom || 1;
  // Reason: the most similar of the last `reasonWindow` history items. This runs for
  // every recalled item (~1,000 x 30 dot products of D), so the recent items' vectors
  // are copied into one contiguous block and the loops touch only local typed arrays.
  const E = model.embeddings;
  const recentPos: number[] = [];
  const recentVecs = new Float32Array(reasonWindow * D);
  for (let p = historyItemIds.length - 1; p >= 0 && recentPos.length < reasonWindow; p--) {
    const idx = model.vocab.get(historyItemIds[p]!);
    if (idx === undefined) continue;
    recentVecs.set(E.subarray(idx * D, idx * D + D), recentPos.length * D);
    recentPos.push(p);
  }
  const R = recentPos.length;
  return ranked.map(([label, score]) => {
    let reasonIndex = -1;
    let reasonScore = Number.NEGATIVE_INFINITY;
    const base = label * D;
    for (let r = 0; r < R; r++) {
      const off = r * D;
      let s = 0;
      for (let d = 0; d < D; d++) s += E[base + d]! * recentVecs[off + d]!;
      if (s > reasonScore) {
        reasonScore = s;
        reasonIndex = recentPos[r]!;
      }
    }
    // Scores rescaled to [0.5, 1] so the channel's best is 1 like the others.
    return newCandidate(model.itemIds[label]!, {
      score: 0.5 + (0.5 * (score - bottom)) / span,
      channels: [channel],
      reasonIndex,
    });
  });
}
