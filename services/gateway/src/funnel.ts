/**
 * The funnel, readable in one place: stages in order, their budgets, the
 * candidate counts, the recall channels and quotas, fusion weights, the
 * fallback chain, and the experiment that may override any of it.
 *
 *   gateway -> recall (~700; ~1,000 with a query) -> prerank (300) -> rank (300) -> rerank (count) -> response
 *                                                                      └─ popular items if all else fails
 *
 * STAGE_STEPS below is the order and each stage's fail-open policy; the
 * executor in recommend.ts runs it.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

export interface FunnelDefinition {
  readonly id: string;
  /** Whole-request budget; the caller's deadline wins when shorter. */
  readonly totalBudgetMs: number;
  readonly recall: {
    readonly budgetMs: number;
    readonly maxCandidates: number;
    /** channel id -> quota; a channel missing here uses recall's default; 0 turns it off. */
    readonly channels: Readonly<Record<string, number>>;
    /** failure policy: dropped channels fail open inside recall; recall down -> popular items. */
  };
  readonly prerank: {
    readonly budgetMs: number;
    readonly keep: number /* failure: keep top by recall score */;
  };
  readonly rank: { readonly budgetMs: number /* failure: use prerank scores */ };
  readonly rerank: {
    readonly budgetMs: number;
    /** task -> weight for score fusion. */
    readonly weights: Readonly<Record<string, number>>;
    /* failure: rank order, de-duplication and filters still applied */
  };
  /**
   * Offline evaluation only (`npm run eval:funnel`), never set in serving:
   * answer with the candidates as they leave this stage, in that stage's
   * order (its score), with the seen and excluded filters applied, and skip
   * the later stages. It measures what each stage adds.
   */
  readonly stopAfter?: FunnelStage;
}

/**
 * How a stage fails open, i.e. what the gateway serves instead when the stage
 * errs, misses its budget, breaks its contract or has its circuit open:
 * - `popular`: the gateway's own popular list (recall);
 * - `top_by_recall_score`: the best `prerank.keep` by recall's score (prerank);
 * - `prerank_scores`: the candidates ordered by their prerank score (rank);
 * - `rank_order`: the last score's order, with the answer filters (seen,
 *   blocked, excluded, duplicates) still applied (rerank).
 */
export type FailOpen = "popular" | "top_by_recall_score" | "prerank_scores" | "rank_order";

export interface StageStep {
  readonly id: "recall" | "prerank" | "rank" | "rerank";
  readonly onFailure: FailOpen;
  /** Flagged in the answer's degradations (and counted) when the stage fails open. */
  readonly degradation: string;
  /** Reported as the stage's model version when it fails open. */
  readonly fallbackVersion: string;
}

/**
 * The funnel's stages in order with their fail-open policies. One executor
 * (recommend.ts) runs them: each call behind its stage's circuit breaker and
 * within its budget of the funnel definition. A stage that answers with a
 * fallback of its own (prerank or rank without a model) flags it itself.
 */
export const STAGE_STEPS = [
  {
    id: "recall",
    onFailure: "popular",
    degradation: "recall_fallback",
    fallbackVersion: "fallback:gateway_popular",
  },
  {
    id: "prerank",
    onFailure: "top_by_recall_score",
    degradation: "prerank_fallback",
    fallbackVersion: "fallback:recall_score",
  },
  {
    id: "rank",
    onFailure: "prerank_scores",
    degradation: "rank_fallback",
    fallbackVersion: "fallback:prerank_score",
  },
  {
    id: "rerank",
    onFailure: "rank_order",
    degradation: "rerank_fallback",
    fallbackVersion: "fallback:rank_order",
  },
] as const satisfies readonly StageStep[];

export type StageId = (typeof STAGE_STEPS)[number]["id"];

/** The stages after which an evaluation may cut the funnel. */
export const CUT_STAGES = ["recall", "prerank", "rank"] as const;
export type FunnelStage = (typeof CUT_STAGES)[number];

export const homeFeed: FunnelDefinition = {
  id: "home_feed",
  totalBudgetMs: 100,
  recall: {
    budgetMs: 35,
    maxCandidates: 2000,
    // fresh: new items near the user's content profile (cold start); query: only when the request has a query.
    // kuaiformer 500, not 1,000: the whole funnel recommends as well or better with
    // 500 (HR@20 0.107 vs 0.097) for 15-20% less CPU per request (npm run eval:funnel,
    // docs/evaluation.md): candidates 500-1,000 rarely survive prerank.
    // generative 100: with it the whole funnel's HR@10 rose 0.0969 -> 0.1013, with 300 only to 0.0984
    // (npm run eval:funnel, 2026-12-07; the rows of services/gateway/eval-rows/, docs/evaluation.md).
    channels: { kuaiformer: 500, generative: 100, swing: 300, fresh: 100, query: 300, popular: 200 },
  },
  // Budgets (docs/architecture.md): DESIGN.md's 25/10/40/5 ms redistributed to the
  // measured cost of the learned stages plus one gRPC hop each (~3 ms on Node with
  // a few hundred candidates): recall needs more than 25 ms, rank less than 40.
  prerank: { budgetMs: 20, keep: 300 },
  rank: { budgetMs: 30 },
  // Fusion and diversity chosen by `npm run eval:funnel` (docs/evaluation.md, rows of
  // services/gateway/eval-rows/): like 0.5 ties click alone at HR@10 and wins NDCG@10.
  rerank: { budgetMs: 12, weights: { click: 1, like: 0.5 } },
};

/** A variant overrides fields of the funnel; it never forks the code. */
export interface Variant {
  readonly name: string;
  /** Relative share of users. */
  readonly weight: number;
  readonly overrides?: DeepPartial<FunnelDefinition>;
}

export interface Experiment {
  readonly name: string;
  readonly variants: readonly Variant[];
}

export interface FunnelFile {
  readonly funnel?: DeepPartial<FunnelDefinition>;
  readonly experiment?: Experiment;
}

export const defaultExperiment: Experiment = {
  name: "home_feed_2026_11",
  variants: [
    { name: "control", weight: 50 },
    { name: "more_likes", weight: 50, overrides: { rerank: { weights: { click: 1, like: 1.5 } } } },
  ],
};

type DeepPartial<T> = { readonly [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep merge where `override` wins; records such as quotas and weights are replaced whole. */
export function applyOverrides<T>(base: T, override: DeepPartial<T> | undefined): T {
  if (!override) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(override as Record<string, unknown>)) {
    if (value === undefined) continue;
    const current = out[key];
    const replaceWhole = key === "channels" || key === "weights";
    out[key] =
      isPlainObject(value) && isPlainObject(current) && !replaceWhole
        ? applyOverrides(current, value)
        : value;
  }
  return out as T;
}

/** Stable assignment: hash(experiment, user) picks a variant by weight. */
export function assignVariant(experiment: Experiment, userId: string): Variant {
  const total = experiment.variants.reduce((s, v) => s + v.weight, 0);
  const digest = createHash("sha256").update(`${experiment.name}\u0000${userId}`).digest();
  const bucket = (digest.readUInt32BE(0) / 0x1_0000_0000) * total;
  let acc = 0;
  for (const v of experiment.variants) {
    acc += v.weight;
    if (bucket < acc) return v;
  }
  return experiment.variants[experiment.variants.length - 1]!;
}

export function loadFunnelFile(path: string): FunnelFile {
  if (!path) return {};
  const parsed = JSON.parse(readFileSync(path, "utf8")) as FunnelFile;
  const stop = parsed.funnel?.stopAfter;
  if (stop !== undefined && !CUT_STAGES.includes(stop)) {
    throw new Error(
      `${path}: funnel.stopAfter must be one of ${CUT_STAGES.join(", ")}, got ${JSON.stringify(stop)}`,
    );
  }
  if (parsed.experiment) {
    if (!Array.isArray(parsed.experiment.variants) || parsed.experiment.variants.length === 0) {
      throw new Error(`${path}: experiment.variants must be a non-empty list`);
    }
    for (const v of parsed.experiment.variants) {
      if (!v.name || !(v.weight > 0)) throw new Error(`${path}: each variant needs a name and a weight > 0`);
    }
  }
  return parsed;
}
