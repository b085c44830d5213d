/**
 * The learned two-tower prerank model (model store `prerank`,
 * docs/ranking.md) served through the shared LearnedScorer: a click logit
 * for every candidate in one ONNX run, the interim
 * GenreAffinityPrerankScorer as the fallback.
 */
import {
  type Candidate,
  type ItemCatalog,
  LearnedScorer,
  type Logger,
  type Metrics,
  type OnnxPool,
  PRERANK_SPEC,
  type RankingModel,
} from "@recsys/shared";
import { GenreAffinityPrerankScorer } from "./scorer.js";

/** prerank_score = score = sigmoid(logit), in (0, 1); count and order unchanged (the caller sorts). */
export function applyPrerank(outputs: Readonly<Record<string, Float32Array>>, candidates: Candidate[]): void {
  const logits = outputs.score!;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    c.prerankScore = 1 / (1 + Math.exp(-logits[i]!));
    c.score = c.prerankScore;
  }
}

export interface PrerankScorerOptions {
  readonly catalog: ItemCatalog;
  readonly current: () => RankingModel | undefined;
  readonly pool: OnnxPool;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  readonly deadlineMarginMs?: number;
}

export function prerankScorer(options: PrerankScorerOptions): LearnedScorer {
  return new LearnedScorer({
    stage: "prerank",
    spec: PRERANK_SPEC,
    current: options.current,
    pool: options.pool,
    fallback: new GenreAffinityPrerankScorer(options.catalog),
    apply: applyPrerank,
    metrics: options.metrics,
    logger: options.logger,
    deadlineMarginMs: options.deadlineMarginMs,
  });
}
