/**
 * The EM3-style multi-task rank model (model store `em3`, docs/ranking.md)
 * served through the shared LearnedScorer: click and like probabilities for
 * every candidate in one ONNX run, the interim GenreAffinityRankScorer as
 * the fallback.
 */
import {
  type Candidate,
  EM3_SPEC,
  type ItemCatalog,
  LearnedScorer,
  type Logger,
  type Metrics,
  type OnnxPool,
  type RankingModel,
} from "@recsys/shared";
import { GenreAffinityRankScorer } from "./scorer.js";

/** task_scores click and like (probabilities in (0, 1)), score = click; count and order unchanged. */
export function applyEm3(outputs: Readonly<Record<string, Float32Array>>, candidates: Candidate[]): void {
  const click = outputs.click!;
  const like = outputs.like!;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    c.taskScores = { click: click[i]!, like: like[i]! };
    c.score = click[i]!;
  }
}

export interface Em3ScorerOptions {
  readonly catalog: ItemCatalog;
  readonly current: () => RankingModel | undefined;
  readonly pool: OnnxPool;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  readonly deadlineMarginMs?: number;
}

export function em3Scorer(options: Em3ScorerOptions): LearnedScorer {
  return new LearnedScorer({
    stage: "rank",
    spec: EM3_SPEC,
    current: options.current,
    pool: options.pool,
    fallback: new GenreAffinityRankScorer(options.catalog),
    apply: applyEm3,
    metrics: options.metrics,
    logger: options.logger,
    deadlineMarginMs: options.deadlineMarginMs,
  });
}
