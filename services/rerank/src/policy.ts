/**
 * The rerank policy, in order: filters (duplicates, seen, blocked, excluded),
 * weighted fusion of task scores, MMR diversity (content-vector similarity), per-genre cap (not with a
 * query: the query says which genre the user wants), fresh-item slots,
 * query matches first (with a query), reasons.
 */
import {
  answerFilters,
  type Candidate,
  type ContentTable,
  type ItemCatalog,
  type Metrics,
  runFilters,
  type Selector,
  type StageContext,
} from "@recsys/shared";
import {
  freshSlotsSelector,
  genreCapSelector,
  mmrSelector,
  queryFirstSelector,
  reasonFor,
  userProfile,
  weightedFusionSelector,
} from "./selectors.js";

export interface RerankPolicyConfig {
  readonly defaultWeights: Readonly<Record<string, number>>;
  readonly mmrLambda: number;
  readonly mmrPool: number;
  readonly genreCapFraction: number;
  /** Positions of the list kept for new items of the `fresh` channel. */
  readonly freshSlots?: number;
}

export class RerankPolicy {
  readonly version: string;

  constructor(
    private readonly catalog: ItemCatalog,
    private readonly config: RerankPolicyConfig,
    private readonly metrics?: Metrics,
    /** Content vectors for MMR's similarity (genre vectors where an item has none). */
    private readonly content?: ContentTable,
  ) {
    this.version = `mmr${config.mmrLambda}-cap${config.genreCapFraction}-fresh${config.freshSlots ?? 0}`;
  }

  run(
    ctx: StageContext,
    candidates: Candidate[],
    count: number,
    excludeItemIds: readonly string[],
    weights: Readonly<Record<string, number>>,
  ): Candidate[] {
    const filtered = runFilters(answerFilters(excludeItemIds), ctx, candidates, (id, n) =>
      this.metrics?.filtered.inc({ filter: id }, n),
    );
    const hasQuery = ctx.query.trim().length > 0;
    const selectors: Selector[] = [
      weightedFusionSelector(Object.keys(weights).length > 0 ? weights : this.config.defaultWeights),
      mmrSelector(this.catalog, this.config.mmrLambda, this.config.mmrPool, this.content),
      ...(hasQuery ? [] : [genreCapSelector(this.catalog, this.config.genreCapFraction)]),
      freshSlotsSelector(this.config.freshSlots ?? 0, this.catalog),
      queryFirstSelector,
    ];
    let list = filtered;
    for (const s of selectors) list = s.select(ctx, list, count);
    const final = list.slice(0, count);
    const profile = userProfile(this.catalog, ctx);
    for (const c of final) c.reason = reasonFor(this.catalog, ctx, c, profile);
    return final;
  }
}
