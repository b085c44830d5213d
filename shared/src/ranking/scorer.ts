/**
 * Serving a learned prerank or rank model: one ONNX run per request on the
 * OnnxPool's worker threads (user side once, all candidates in one batch),
 * with the interim scorer as the fallback whenever the model cannot answer
 * properly: no version loaded yet, the pool's queue is full or the run
 * fails, the answer would come too late for the request's deadline, or an
 * output is not finite. The fallback is never silent: the response names
 * the version "fallback:<interim version>" and carries a degradation
 * "<stage>_<reason>", counted in recsys_degradations_total.
 */
import { Counter } from "@prometheus-io/client";
import { newCandidate } from "../funnel/types.js";
import { EventType } from "../gen/recsys/common/v1/common_pb.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { BufferPool, type OnnxPool, type RunResult } from "../onnx/pool.js";
import type { Candidate, Scorer, StageContext } from "../stages/index.js";
import { ModelWatcher } from "../store/watcher.js";
import { buildRankingFeeds } from "./features.js";
import { NonFiniteOutputError } from "./item-tower.js";
import {
  loadRankingModel,
  type RankingModel,
  type RankingModelSources,
  type RankingModelSpec,
  requestVectors,
} from "./model.js";

/** Why a request was scored by the fallback. */
export type FallbackReason = "no_model" | "model_error" | "model_timeout" | "nonfinite_output";

export interface ScoredBatch {
  readonly candidates: Candidate[];
  /** The model version that scored, or "fallback:<fallback scorer version>". */
  readonly version: string;
  /** "<stage>_<reason>" when the fallback scored; empty otherwise. */
  readonly degradations: string[];
}

export interface LearnedScorerOptions {
  /** "prerank" or "rank": the prefix of degradations and log lines. */
  readonly stage: string;
  readonly spec: RankingModelSpec;
  /** The serving version (ModelWatcher.current), undefined before one loaded. */
  readonly current: () => RankingModel | undefined;
  readonly pool: OnnxPool;
  readonly fallback: Scorer;
  /** Writes the outputs (checked: finite, one value per candidate, in order) onto the candidates. */
  readonly apply: (outputs: Readonly<Record<string, Float32Array>>, candidates: Candidate[]) => void;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  /**
   * The model's answer must come this long before the request's deadline,
   * ms; otherwise the fallback scores (it takes ~1 ms), so a slow run still
   * gives the caller an answer in time.
   */
  readonly deadlineMarginMs?: number;
}

/** Per-registry counters of the learned scorers. */
class RankingMetrics {
  readonly oovCandidates: Counter<"model">;
  private static readonly byRegistry = new WeakMap<Metrics, RankingMetrics>();

  private constructor(metrics: Metrics) {
    this.oovCandidates = new Counter({
      name: "recsys_oov_candidates_total",
      help: "Candidates out of a ranking model's item vocabulary (scored through the OOV index and their content)",
      labelNames: ["model"],
      registers: [metrics.registry],
    });
  }

  static of(metrics: Metrics): RankingMetrics {
    let m = RankingMetrics.byRegistry.get(metrics);
    if (!m) RankingMetrics.byRegistry.set(metrics, (m = new RankingMetrics(metrics)));
    return m;
  }
}

class DeadlineError extends Error {}

export class LearnedScorer {
  private readonly counters: RankingMetrics | undefined;
  private readonly buffers = new BufferPool();
  private failures = 0;

  constructor(private readonly options: LearnedScorerOptions) {
    this.counters = options.metrics ? RankingMetrics.of(options.metrics) : undefined;
  }

  /** The serving model version, or "fallback:<version>" while none is loaded. */
  get version(): string {
    return this.options.current()?.version ?? `fallback:${this.options.fallback.version}`;
  }

  /** Scores `candidates` in place (same count and order). */
  async score(ctx: StageContext, candidates: Candidate[]): Promise<ScoredBatch> {
    const { spec, pool, metrics } = this.options;
    const model = this.options.current();
    if (!model) return this.fallback(ctx, candidates, "no_model");
    if (candidates.length === 0) return { candidates, version: model.version, degradations: [] };
    const budgetMs = ctx.deadline - Date.now() - (this.options.deadlineMarginMs ?? 5);
    if (budgetMs <= 0) return this.fallback(ctx, candidates, "model_timeout");

    let result: RunResult;
    try {
      const vectors = await requestVectors(
        spec,
        model.itemVectors,
        model.maxHistLen,
        ctx.user,
        candidates.map((c) => c.itemId),
      );
      const built = buildRankingFeeds(spec, model, model.userVocab, model.features, ctx.user, candidates, {
        buffers: this.buffers,
        ...vectors,
      });
      if (built.oovCandidates > 0)
        this.counters?.oovCandidates.inc({ model: spec.model }, built.oovCandidates);
      const run = pool.run(model.modelPath, built.feeds);
      // The input buffers come back with the result, also after a deadline: reuse them.
      run.then(
        (r) => this.buffers.release(r.inputs),
        () => undefined,
      );
      result = await withDeadline(run, budgetMs);
    } catch (err) {
      const reason =
        err instanceof DeadlineError
          ? "model_timeout"
          : err instanceof NonFiniteOutputError
            ? "nonfinite_output"
            : "model_error";
      return this.fallback(ctx, candidates, reason, err);
    }
    metrics?.onnxInference.observe(
      { model: spec.model, provider: result.provider },
      result.inferenceMs / 1000,
    );

    const outputs: Record<string, Float32Array> = {};
    for (const name of spec.outputs) {
      const out = result.outputs[name];
      if (out?.type !== "float32" || out.dims.length !== 1 || out.dims[0] !== candidates.length)
        return this.fallback(
          ctx,
          candidates,
          "model_error",
          new Error(
            `output ${name} is ${out?.type} [${out?.dims.join(",")}], expected float32 [${candidates.length}]`,
          ),
        );
      const values = new Float32Array(out.data);
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]!))
          return this.fallback(
            ctx,
            candidates,
            "nonfinite_output",
            new Error(`output ${name}[${i}] is ${values[i]} (version ${model.version})`),
          );
      }
      outputs[name] = values;
    }
    this.options.apply(outputs, candidates);
    return { candidates, version: model.version, degradations: [] };
  }

  /**
   * Scores `rounds` requests of `candidates` items from `itemIds` for a
   * made-up user, so the first real requests do not pay for a cold JIT and
   * ONNX session. Returns the time taken, ms.
   */
  async warmUp(itemIds: readonly string[], candidates: number, rounds = 5): Promise<number> {
    const started = performance.now();
    const history = itemIds
      .slice(0, 50)
      .map((itemId, i) => ({ itemId, timestampMs: i, type: EventType.RATING, value: 4 }));
    const user = { userId: "warm-up", known: true, blockedItemIds: [], earlierSeenItemIds: [], history };
    for (let round = 0; round < rounds; round++) {
      const from = (50 + round * candidates) % Math.max(1, itemIds.length);
      const batch = itemIds.slice(from, from + candidates).map((id) => newCandidate(id));
      const ctx = { requestId: "warm-up", user, scene: "", query: "", deadline: Number.POSITIVE_INFINITY };
      await this.score(ctx, batch);
    }
    return performance.now() - started;
  }

  private async fallback(
    ctx: StageContext,
    candidates: Candidate[],
    reason: FallbackReason,
    err?: unknown,
  ): Promise<ScoredBatch> {
    const { stage, fallback, metrics, logger } = this.options;
    const kind = `${stage}_${reason}`;
    metrics?.degradations.inc({ kind });
    // Without a model every request falls back: that was logged once at start-up.
    if (reason !== "no_model" && this.failures++ % 100 === 0)
      logger?.warn(
        {
          kind,
          requestId: ctx.requestId,
          err: err instanceof Error ? err.message : err,
          failures: this.failures,
        },
        `${stage} model unusable for this request: the interim scorer answered (logged every 100th)`,
      );
    const scored = await fallback.score(ctx, candidates);
    return { candidates: scored, version: `fallback:${fallback.version}`, degradations: [kind] };
  }
}

/** Rejects with DeadlineError after `ms`; the late result is dropped (the pool cannot abort a run). */
function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  if (!Number.isFinite(ms)) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`no answer within ${Math.round(ms)} ms`)), ms);
  });
  work.catch(() => undefined); // a run failing after the deadline is not an unhandled rejection
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

export interface WatchRankingModelOptions extends RankingModelSources {
  readonly spec: RankingModelSpec;
  readonly store: string;
  readonly pool: OnnxPool;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly pollMs?: number;
}

/**
 * Loads the CURRENT version of `spec.model` (if any) and hot-swaps new ones
 * as the trainer publishes them. Each loaded version's execution provider
 * (the requested one, or CPU when that failed) is logged and exported as
 * recsys_onnx_execution_provider.
 */
export async function watchRankingModel(
  options: WatchRankingModelOptions,
): Promise<ModelWatcher<RankingModel>> {
  const { spec, pool, logger, metrics } = options;
  const requested = pool.providers[0] ?? "cpu";
  const watcher = new ModelWatcher<RankingModel>({
    store: options.store,
    model: spec.model,
    logger,
    metrics,
    pollMs: options.pollMs,
    load: (dir, manifest) => loadRankingModel(spec, dir, manifest, pool, options),
  });
  watcher.onSwap(({ version, value }) => {
    metrics?.setExecutionProvider(spec.model, requested, value.provider);
    const fields = {
      model: spec.model,
      version,
      requested,
      provider: value.provider,
      reason: value.providerFallbackReason ?? (value.provider === requested ? "as requested" : "unknown"),
      items: value.features.size,
    };
    if (value.provider === requested) logger.info(fields, "onnx execution provider");
    else logger.warn(fields, "onnx execution provider: fell back from the requested one");
  });
  await watcher.start();
  if (!watcher.current())
    logger.warn(
      { model: spec.model, store: options.store },
      "no loadable model version yet: the interim scorer answers (degradation *_no_model) until one is published",
    );
  return watcher;
}
