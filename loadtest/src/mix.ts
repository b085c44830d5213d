/**
 * The realistic traffic mix, as k6-style scenarios. For a Recommend rate R:
 *
 *   recommend         0.9 R   Recommend, users by activity, count 20
 *   recommend_query   0.1 R   the same with a free-text query (titles, genres)
 *   feedback          0.2 R   Report of 1-5 events on recently recommended items
 *   catalog_upsert    0.2/s   UpsertItems of 1-3 synthetic items; requires the
 *                             catalog capability, so it stays off (with a
 *                             message) until a service answers CatalogService
 */
import type { Scenario } from "./scenario.js";

export interface MixInput {
  /** Recommend requests per second, with and without query together. */
  readonly rate: number;
  readonly duration: string;
  /** Linear ramp from 0 before the plateau (ramping-arrival-rate); none by default. */
  readonly rampUp?: string;
  readonly queryShare?: number;
  /** Report calls per Recommend call. */
  readonly feedbackPerRecommend?: number;
  /** UpsertItems calls per second. */
  readonly catalogRate?: number;
  readonly count?: number;
  readonly maxVUs?: number;
  readonly timeout?: string;
  readonly arrival?: "uniform" | "poisson";
}

export const DEFAULT_MIX = {
  queryShare: 0.1,
  feedbackPerRecommend: 0.2,
  catalogRate: 0.2,
  count: 20,
  maxVUs: 1_000,
  timeout: "2s",
} as const;

export function trafficMix(m: MixInput): Record<string, Scenario> {
  const queryShare = m.queryShare ?? DEFAULT_MIX.queryShare;
  const feedback = m.feedbackPerRecommend ?? DEFAULT_MIX.feedbackPerRecommend;
  const catalog = m.catalogRate ?? DEFAULT_MIX.catalogRate;
  const count = m.count ?? DEFAULT_MIX.count;
  const common = {
    maxVUs: m.maxVUs ?? DEFAULT_MIX.maxVUs,
    timeout: m.timeout ?? DEFAULT_MIX.timeout,
    arrival: m.arrival,
  };
  const at = (rate: number) =>
    m.rampUp
      ? {
          executor: "ramping-arrival-rate" as const,
          startRate: 0,
          timeUnit: "1s",
          stages: [
            { target: rate, duration: m.rampUp },
            { target: rate, duration: m.duration },
          ],
        }
      : { executor: "constant-arrival-rate" as const, rate, timeUnit: "1s", duration: m.duration };
  const out: Record<string, Scenario> = {};
  const plain = m.rate * (1 - queryShare);
  const query = m.rate * queryShare;
  if (plain > 0)
    out.recommend = { ...at(plain), ...common, exec: "recommend", params: { count }, tags: { query: "no" } };
  if (query > 0) {
    out.recommend_query = {
      ...at(query),
      ...common,
      exec: "recommend",
      params: { count, query: true },
      tags: { query: "yes" },
    };
  }
  if (m.rate * feedback > 0) {
    out.feedback = {
      ...at(m.rate * feedback),
      ...common,
      exec: "feedback",
      params: { minEvents: 1, maxEvents: 5 },
    };
  }
  if (catalog > 0) {
    out.catalog_upsert = {
      ...at(catalog),
      ...common,
      exec: "catalogUpsert",
      params: { maxItems: 3 },
      requires: "catalog",
    };
  }
  return out;
}

/** The latency SLO of DESIGN.md (gateway total 100 ms) and the error budget, as thresholds. */
export function sloThresholds(p99Ms = 100): Record<string, string[]> {
  return {
    "grpc_req_duration{method:Recommend}": [`p(99)<${p99Ms}`],
    "grpc_req_duration{method:Report}": [`p(99)<${p99Ms}`],
    grpc_req_failed: ["rate<0.001"],
    checks: ["rate>0.999"],
    dropped_iterations: ["count==0"],
  };
}
