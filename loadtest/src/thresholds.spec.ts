import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { recordUs, Series } from "./stats.js";
import { aggregate, compare, parseThresholdExpr, parseThresholdKey } from "./thresholds.js";

describe("thresholds", () => {
  it("parses metric{tag:value} keys into a canonical form", () => {
    const k = parseThresholdKey("grpc_req_duration{ scenario:recommend_query , method:Recommend }");
    assert.equal(k.metric, "grpc_req_duration");
    assert.deepEqual(k.filter, { scenario: "recommend_query", method: "Recommend" });
    assert.equal(k.text, "grpc_req_duration{method:Recommend,scenario:recommend_query}");
    assert.deepEqual(parseThresholdKey("checks").filter, {});
  });

  for (const [metric, text, agg, op, value, percentile] of [
    ["grpc_req_duration", "p(99)<100", "p", "<", 100, 99],
    ["grpc_req_duration", "p(99.9) <= 250", "p", "<=", 250, 99.9],
    ["grpc_req_duration", "avg<50", "avg", "<", 50, undefined],
    ["checks", "rate>0.999", "rate", ">", 0.999, undefined],
    ["dropped_iterations", "count==0", "count", "==", 0, undefined],
  ] as const) {
    it(`parses ${metric}: ${text}`, () => {
      const e = parseThresholdExpr(metric, text);
      assert.deepEqual([e.agg, e.op, e.value, e.percentile], [agg, op, value, percentile]);
    });
  }

  it("rejects unknown metrics, bad filters and aggregations that do not apply", () => {
    assert.throws(() => parseThresholdKey("http_req_duration"), /unknown metric/);
    assert.throws(() => parseThresholdKey("checks{scenario}"), /tag:value/);
    assert.throws(() => parseThresholdExpr("checks", "p(99)<1"), /does not apply/);
    assert.throws(() => parseThresholdExpr("grpc_req_duration", "p99<100"), /cannot parse/);
  });

  it("aggregates a series: latency in ms, rates and counts", () => {
    const s = new Series("", {});
    for (let i = 1; i <= 100; i++) recordUs(s.latency, i * 1000); // 1..100 ms
    s.requests = 100;
    s.failed = 1;
    s.checksPassed = 399;
    s.checksFailed = 1;
    s.dropped = 2;
    const p = (m: Parameters<typeof parseThresholdExpr>[0], t: string) =>
      aggregate(m, parseThresholdExpr(m, t), s, 10);
    assert.ok(Math.abs(p("grpc_req_duration", "p(99)<1") - 99) < 0.1);
    assert.ok(Math.abs(p("grpc_req_duration", "med<1") - 50) < 0.1);
    assert.equal(p("grpc_req_failed", "rate<1"), 0.01);
    assert.equal(p("checks", "rate>0"), 399 / 400);
    assert.equal(p("dropped_iterations", "count==0"), 2);
    assert.equal(p("grpc_reqs", "rate>0"), 10);
    assert.ok(compare(99, "<", 100) && !compare(100, "<", 100) && compare(0, "==", 0));
  });

  it("no checks at all is a failing checks rate, not a perfect one", () => {
    const s = new Series("", {});
    assert.equal(aggregate("checks", parseThresholdExpr("checks", "rate>0.999"), s, 1), 0);
  });

  it("series match samples by tag filter", () => {
    const s = new Series("method:Recommend", { method: "Recommend" });
    assert.ok(s.matches({ scenario: "recommend", method: "Recommend" }));
    assert.ok(!s.matches({ scenario: "feedback", method: "Report" }));
  });
});
