import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { checkObservability, exportedMetrics, metricsIn } from "./observability.js";
import { defaultRepoRoot } from "./service-config.js";

describe("metricsIn", () => {
  it("finds metric names, drops histogram suffixes, ignores label values", () => {
    assert.deepEqual(
      metricsIn(
        'histogram_quantile(0.99, sum by (le) (rate(recsys_stage_seconds_bucket{stage=~"recall\\\\..+", service="recsys_not_a_metric"}[5m]))) / recsys_stage_seconds_count',
      ),
      ["recsys_stage_seconds"],
    );
    assert.deepEqual(metricsIn("sum(kafka_consumergroup_lag) + nodejs_eventloop_lag_p99_seconds"), [
      "kafka_consumergroup_lag",
      "nodejs_eventloop_lag_p99_seconds",
    ]);
  });
});

describe("exportedMetrics", () => {
  it("reads the names the services register, from their built code", () => {
    const names = exportedMetrics(defaultRepoRoot());
    for (const name of [
      "recsys_grpc_server_handling_seconds",
      "recsys_stage_seconds",
      "recsys_degradations_total",
      "recsys_filtered_candidates_total",
      "recsys_model_version_info",
      "recsys_online_updates_total",
      "recsys_online_samples_buffered",
    ]) {
      assert.ok(names.has(name), name);
    }
  });
});

describe("checkObservability", () => {
  const tmp = mkdtempSync(join(tmpdir(), "k8s-check-obs-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(tmp, path)), { recursive: true });
    writeFileSync(join(tmp, path), text);
  };

  it("passes on the real dashboard and rules", () => {
    assert.deepEqual(checkObservability(defaultRepoRoot(), []), []);
  });

  it("reports a queried metric that nothing exports, and an unrecorded rule", () => {
    write("shared/dist/metrics.js", 'new Histogram({ name: "recsys_real_seconds" });');
    write(
      "deploy/grafana/recsys-funnel.json",
      JSON.stringify({
        panels: [
          {
            targets: [
              { expr: "rate(recsys_real_seconds_bucket[5m])" },
              { expr: "rate(recsys_made_up_total[5m])" },
            ],
          },
        ],
      }),
    );
    write(
      "deploy/prometheus/recsys.rules.yml",
      "groups:\n  - rules:\n      - alert: X\n        expr: recsys:missing:rate5m > 1\n",
    );
    write("deploy/prometheus/prometheus.yml", "scrape_configs: []\n");
    const messages = checkObservability(tmp, []).map((f) => `${f.resource}: ${f.message}`);
    assert.equal(messages.length, 2, messages.join("\n"));
    assert.match(messages[0] ?? "", /recsys-funnel\.json: queries recsys_made_up_total/);
    assert.match(messages[1] ?? "", /recsys\.rules\.yml: uses recsys:missing:rate5m, which no rule records/);
  });
});
