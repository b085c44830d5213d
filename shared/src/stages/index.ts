/**
 * Stage primitives every service composes (after X's product-mixer): each
 * stage has a stable `id` that keys its metrics, latency target and fail-open
 * policy, and exactly one method.
 *
 * - CandidateSource: produces candidates for a user (a recall channel).
 * - Filter: splits candidates into kept and removed (so removals are counted).
 * - Scorer: adds scores; keeps its input's count and order.
 * - Selector: reorders and/or truncates.
 */
import type { Candidate, UserView } from "../funnel/types.js";

export type { Candidate, UserView };

/** What every stage sees about the request. */
export interface StageContext {
  readonly requestId: string;
  readonly user: UserView;
  readonly scene: string;
  readonly query: string;
  /** Absolute deadline, ms since epoch (Infinity when none). */
  readonly deadline: number;
  readonly signal?: AbortSignal;
}

export interface CandidateSource {
  readonly id: string;
  /** True when the source never returns the user's history items (recall then asks it for no extra ones). */
  readonly excludesHistory?: boolean;
  /** Up to `quota` candidates, best first, with `score` normalised to [0, 1]. */
  fetch(ctx: StageContext, quota: number): Promise<Candidate[]> | Candidate[];
}

export interface FilterResult {
  readonly kept: Candidate[];
  readonly removed: Candidate[];
}

export interface Filter {
  readonly id: string;
  apply(ctx: StageContext, candidates: Candidate[]): FilterResult;
}

export interface Scorer {
  readonly id: string;
  /** Version string reported in `model_versions`. */
  readonly version: string;
  /** Returns the same candidates, same order, with scores set. */
  score(ctx: StageContext, candidates: Candidate[]): Promise<Candidate[]> | Candidate[];
}

export interface Selector {
  readonly id: string;
  select(ctx: StageContext, candidates: Candidate[], count: number): Candidate[];
}

/** A filter that removes every candidate whose id is in the set `idsOf(ctx)`. */
export function idSetFilter(id: string, idsOf: (ctx: StageContext) => ReadonlySet<string>): Filter {
  return {
    id,
    apply(ctx, candidates) {
      const ids = idsOf(ctx);
      const kept: Candidate[] = [];
      const removed: Candidate[] = [];
      for (const c of candidates) (ids.has(c.itemId) ? removed : kept).push(c);
      return { kept, removed };
    },
  };
}

/** Removes items the user already interacted with. */
export const seenItemsFilter: Filter = idSetFilter(
  "seen_items",
  (ctx) => new Set([...ctx.user.earlierSeenItemIds, ...ctx.user.history.map((e) => e.itemId)]),
);

/** Removes items blocked for the user (dislikes, caller exclusions). */
export const blockedItemsFilter: Filter = idSetFilter(
  "blocked_items",
  (ctx) => new Set(ctx.user.blockedItemIds),
);

/** Keeps the first occurrence of each item id, merging channels and provenance into it. */
export const duplicateItemsFilter: Filter = {
  id: "duplicate_items",
  apply(_ctx, candidates) {
    const firstById = new Map<string, Candidate>();
    const removed: Candidate[] = [];
    for (const c of candidates) {
      const first = firstById.get(c.itemId);
      if (!first) {
        firstById.set(c.itemId, c);
        continue;
      }
      for (const ch of c.channels) if (!first.channels.includes(ch)) first.channels.push(ch);
      if (c.recallScore > first.recallScore) first.recallScore = c.recallScore;
      if (first.reasonIndex < 0 && c.reasonIndex >= 0) first.reasonIndex = c.reasonIndex;
      removed.push(c);
    }
    return { kept: [...firstById.values()], removed };
  },
};

/** Runs filters in order, reporting how many each removed. */
/**
 * The filters every answer passes, in order: duplicates, the user's seen and
 * blocked items, the request's exclusions. Rerank's policy runs them, and so
 * does the gateway when it answers without rerank (a fallback, an evaluation's cut).
 */
export function answerFilters(excludeItemIds: readonly string[]): Filter[] {
  const exclude = new Set(excludeItemIds);
  return [
    duplicateItemsFilter,
    seenItemsFilter,
    blockedItemsFilter,
    idSetFilter("excluded_items", () => exclude),
  ];
}

export function runFilters(
  filters: readonly Filter[],
  ctx: StageContext,
  candidates: Candidate[],
  onRemoved?: (filterId: string, count: number) => void,
): Candidate[] {
  let current = candidates;
  for (const f of filters) {
    const { kept, removed } = f.apply(ctx, current);
    if (removed.length > 0) onRemoved?.(f.id, removed.length);
    current = kept;
  }
  return current;
}

/** Sorts by `score` descending; ties broken by item id so results are deterministic. */
export function byScoreDesc(a: Candidate, b: Candidate): number {
  return b.score - a.score || (a.itemId < b.itemId ? -1 : a.itemId > b.itemId ? 1 : 0);
}

/** Rejects with `timeoutError` if `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeoutError()), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
