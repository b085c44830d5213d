import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  counterDiff,
  diffHistogram,
  histogramQuantile,
  histograms,
  parsePrometheusText,
} from "./promtext.js";

const scrape = (stageCounts: number[], sum: number, degradations: number) => `# HELP recsys_stage_seconds x
# TYPE recsys_stage_seconds histogram
recsys_stage_seconds_bucket{le="0.005",service="gateway",stage="rank",outcome="ok"} ${stageCounts[0]}
recsys_stage_seconds_bucket{le="0.01",service="gateway",stage="rank",outcome="ok"} ${stageCounts[1]}
recsys_stage_seconds_bucket{le="0.02",service="gateway",stage="rank",outcome="ok"} ${stageCounts[2]}
recsys_stage_seconds_bucket{le="+Inf",service="gateway",stage="rank",outcome="ok"} ${stageCounts[3]}
recsys_stage_seconds_sum{service="gateway",stage="rank",outcome="ok"} ${sum}
recsys_stage_seconds_count{service="gateway",stage="rank",outcome="ok"} ${stageCounts[3]}
recsys_stage_seconds_bucket{le="0.005",service="gateway",stage="rank",outcome="error"} 0
recsys_stage_seconds_bucket{le="0.01",service="gateway",stage="rank",outcome="error"} 0
recsys_stage_seconds_bucket{le="0.02",service="gateway",stage="rank",outcome="error"} 0
recsys_stage_seconds_bucket{le="+Inf",service="gateway",stage="rank",outcome="error"} 2
recsys_stage_seconds_sum{service="gateway",stage="rank",outcome="error"} 0.1
recsys_stage_seconds_count{service="gateway",stage="rank",outcome="error"} 2
recsys_degradations_total{service="gateway",kind="rank_fallback"} ${degradations}
recsys_degradations_total{service="gateway",kind="a \\"quoted\\" kind"} 1
`;

describe("Prometheus text", () => {
  it("parses samples with labels, escapes and +Inf", () => {
    const s = parsePrometheusText(scrape([1, 2, 3, 4], 0.05, 3));
    assert.equal(s.length, 14);
    assert.equal(s.find((x) => x.labels.le === "+Inf")?.value, 4);
    assert.ok(s.some((x) => x.labels.kind === 'a "quoted" kind'));
  });

  it("histogram_quantile interpolates inside the bucket like Prometheus", () => {
    // 100 observations: 50 <= 5 ms, 40 in (5, 10], 10 in (10, 20]
    const h = {
      buckets: [
        { le: 0.005, count: 50 },
        { le: 0.01, count: 90 },
        { le: 0.02, count: 100 },
        { le: Infinity, count: 100 },
      ],
      sum: 0,
      count: 100,
    };
    assert.equal(histogramQuantile(0.5, h), 0.005);
    assert.ok(Math.abs(histogramQuantile(0.25, h) - 0.0025) < 1e-12);
    assert.ok(Math.abs(histogramQuantile(0.7, h) - 0.0075) < 1e-12);
    assert.ok(Math.abs(histogramQuantile(0.95, h) - 0.015) < 1e-12);
    // rank in +Inf: the highest finite bound
    const tail = {
      buckets: [
        { le: 0.01, count: 1 },
        { le: Infinity, count: 10 },
      ],
      sum: 0,
      count: 10,
    };
    assert.equal(histogramQuantile(0.99, tail), 0.01);
    assert.ok(
      Number.isNaN(histogramQuantile(0.5, { buckets: [{ le: Infinity, count: 0 }], sum: 0, count: 0 })),
    );
  });

  it("diffs two scrapes by group (outcomes added) and counters by label", () => {
    const before = parsePrometheusText(scrape([1, 2, 3, 4], 0.05, 3));
    const after = parsePrometheusText(scrape([11, 52, 103, 104], 1.05, 10));
    const by = (s: typeof before) => histograms(s, "recsys_stage_seconds", (l) => l.stage);
    const d = diffHistogram(by(after).get("rank")!, by(before).get("rank"));
    assert.deepEqual(
      d.buckets.map((b) => b.count),
      [10, 50, 100, 100],
    );
    assert.equal(d.count, 100);
    assert.ok(Math.abs(d.sum - 1) < 1e-9);
    assert.deepEqual(
      [...counterDiff(before, after, "recsys_degradations_total", "kind")],
      [["rank_fallback", 7]],
    );
  });
});
