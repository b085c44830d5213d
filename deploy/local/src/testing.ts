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

/** Writes a funnel config with relaxed budgets into `dir` and returns the per-service env that applies it. */
export function relaxedBudgetEnv(dir: string): Partial<Record<ServiceName, Record<string, string>>> {
  const path = join(dir, "funnel-relaxed.json");
  writeFileSync(path, JSON.stringify({ funnel: RELAXED_BUDGETS }));
  return {
    gateway: { RECSYS_FUNNEL_CONFIG: path },
    recall: { RECSYS_RECALL_CHANNEL_TIMEOUT_MS: "220" },
  };
}
