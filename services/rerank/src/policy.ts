/**
 * The rerank policy, in order: filters (duplicates, seen, blocked, excluded),
 * weighted fusion of task scores, MMR diversity, per-genre cap, reasons.
 */
import {
  blockedItemsFilter,
  type Candidate,
  duplicateItemsFilter,
  type ItemCatalog,
  idSetFilter,
  type Metrics,
  runFilters,
  type Selector,
  type StageContext,
  seenItemsFilter,
} from "@recsys/shared";
import {
  genreCapSelector,
  mmrSelector,
  reasonFor,
  userProfile,
  weightedFusionSelector,
} from "./selectors.js";

export interface RerankPolicyConfig {
  readonly defaultWeights: Readonly<Record<string, number>>;
  readonly mmrLambda: number;
  readonly mmrPool: number;
  readonly genreCapFraction: number;
}

export class RerankPolicy {
  readonly version: string;

  constructor(
    private readonly catalog: ItemCatalog,
    private readonly config: RerankPolicyConfig,
    private readonly metrics?: Metrics,
  ) {
    this.version = `mmr${config.mmrLambda}-cap${config.genreCapFraction}`;
  }

  run(
    ctx: StageContext,
    candidates: Candidate[],
    count: number,
    excludeItemIds: readonly string[],
    weights: Readonly<Record<string, number>>,
  ): Candidate[] {
    const exclude = new Set(excludeItemIds);
    const filtered = runFilters(
      [
        duplicateItemsFilter,
        seenItemsFilter,
        blockedItemsFilter,
        idSetFilter("excluded_items", () => exclude),
      ],
      ctx,
      candidates,
      (id, n) => this.metrics?.filtered.inc({ filter: id }, n),
    );
    const selectors: Selector[] = [
      weightedFusionSelector(Object.keys(weights).length > 0 ? weights : this.config.defaultWeights),
      mmrSelector(this.catalog, this.config.mmrLambda, this.config.mmrPool),
      genreCapSelector(this.catalog, this.config.genreCapFraction),
    ];
    let list = filtered;
    for (const s of selectors) list = s.select(ctx, list, count);
    const final = list.slice(0, count);
    const profile = userProfile(this.catalog, ctx);
    for (const c of final) c.reason = reasonFor(this.catalog, ctx, c, profile);
    return final;
  }
}
