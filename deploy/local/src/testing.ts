/**
 * Test helper: funnel budgets ten times the defaults, for end-to-end suites
 * that check what the funnel returns and how it fails over, not latency
 * (the benchmarks measure latency). With the default 10-40 ms stage budgets a
 * busy 2-core CI machine turns scheduling hiccups into fallbacks, and
 * functional assertions such as "no degradations" become flaky.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ServiceName } from "./stack.js";

export const RELAXED_BUDGETS = {
  totalBudgetMs: 1_000,
  recall: { budgetMs: 250 },
  prerank: { budgetMs: 150 },
  rank: { budgetMs: 400 },
  rerank: { budgetMs: 100 },
} as const;

/**
 * Writes a funnel config with relaxed budgets into `dir` and returns the
 * per-service env that applies it. `extra` adds funnel overrides (the
 * budgets still win) and an experiment, as in a RECSYS_FUNNEL_CONFIG file.
 */
export function relaxedBudgetEnv(
  dir: string,
  extra: { name?: string; funnel?: Record<string, unknown>; experiment?: unknown } = {},
): Partial<Record<ServiceName, Record<string, string>>> {
  const path = join(dir, `funnel-${extra.name ?? "relaxed"}.json`);
  const funnel = { ...extra.funnel, ...RELAXED_BUDGETS } as Record<string, unknown>;
  for (const stage of ["recall", "prerank", "rank", "rerank"] as const) {
    const override = extra.funnel?.[stage];
    if (override && typeof override === "object") funnel[stage] = { ...override, ...RELAXED_BUDGETS[stage] };
  }
  writeFileSync(path, JSON.stringify({ funnel, experiment: extra.experiment }));
  return {
    // admission keeps its limit, but slow answers on a busy CI machine do not lower it
    gateway: { RECSYS_FUNNEL_CONFIG: path, RECSYS_ADMISSION_RECOMMEND_TARGET_MS: "10000" },
    recall: { RECSYS_RECALL_CHANNEL_TIMEOUT_MS: "220" },
  };
}
