import {
  type Candidate,
  genreAffinity,
  type ItemCatalog,
  type Scorer,
  type StageContext,
  userGenreProfile,
} from "@recsys/shared";

/**
 * INTERIM prerank scorer (replaced by a learned two-tower/COLD model in the
 * ranking issue): genre affinity between the user's history profile and the
 * item, times a popularity prior, plus a little recall evidence.
 *   score = (0.1 + affinity) * (0.2 + popularity^0.5) * (0.8 + 0.2 * recall_score)
 * Unknown items get affinity 0 and popularity 0: they are kept, scored low.
 */
export class GenreAffinityPrerankScorer implements Scorer {
  readonly id = "genre_affinity_prerank";
  readonly version = "interim-genre-affinity-v1";

  constructor(private readonly catalog: ItemCatalog) {}

  score(ctx: StageContext, candidates: Candidate[]): Candidate[] {
    const profile = userGenreProfile(this.catalog, ctx.user.history);
    for (const c of candidates) {
      const affinity = genreAffinity(this.catalog, profile, c.itemId);
      const popularity = this.catalog.popularityPrior(c.itemId);
      c.prerankScore = (0.1 + affinity) * (0.2 + Math.sqrt(popularity)) * (0.8 + 0.2 * c.recallScore);
      c.score = c.prerankScore;
    }
    return candidates;
  }
}
