import {
  type Candidate,
  genreAffinity,
  type ItemCatalog,
  type Scorer,
  type StageContext,
  userGenreProfile,
} from "@recsys/shared";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * INTERIM multi-task rank scorer (replaced by the EM3-style ONNX model in the
 * ranking issue). Two transparent task scores:
 *   click = sigmoid(3*affinity + 2*popularity + 1.5*prerank_evidence - 3)
 *   like  = click-independent quality: sigmoid(2.5*(bayesian_rating - global_mean) + 2*affinity - 1)
 * The score is `click`; rerank fuses the tasks with its own weights.
 * Keeps the input's count and order (the rank RPC contract).
 */
export class GenreAffinityRankScorer implements Scorer {
  readonly id = "genre_affinity_rank";
  readonly version = "interim-affinity-quality-v1";

  constructor(private readonly catalog: ItemCatalog) {}

  score(ctx: StageContext, candidates: Candidate[]): Candidate[] {
    const profile = userGenreProfile(this.catalog, ctx.user.history);
    const maxPrerank = candidates.reduce((m, c) => Math.max(m, c.prerankScore), 0) || 1;
    for (const c of candidates) {
      const affinity = genreAffinity(this.catalog, profile, c.itemId);
      const popularity = this.catalog.popularityPrior(c.itemId);
      const quality = this.catalog.bayesianRating(c.itemId) - this.catalog.globalMeanRating;
      const click = sigmoid(3 * affinity + 2 * popularity + 1.5 * (c.prerankScore / maxPrerank) - 3);
      const like = sigmoid(2.5 * quality + 2 * affinity - 1);
      c.taskScores = { click, like };
      c.score = click;
    }
    return candidates;
  }
}
