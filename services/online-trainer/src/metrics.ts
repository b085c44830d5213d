/** Online-trainer metrics (recsys_online_*), on the process's Metrics registry. */

import { Counter, Gauge, Histogram } from "@prometheus-io/client";
import type { Metrics } from "@recsys/shared";

export class OnlineMetrics {
  readonly updates: Counter<"model" | "decision">;
  readonly updateSeconds: Histogram<"model">;
  readonly lastPublish: Gauge<"model">;
  readonly lastUpdate: Gauge<"model">;
  readonly buffered: Gauge;
  readonly samples: Counter<"outcome">;
  readonly feedback: Counter<"outcome">;
  readonly badRecords: Counter<"topic">;

  private constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.updates = new Counter({
      name: "recsys_online_updates_total",
      help: "Online updates per model by outcome: the trainer's decision (published, rejected, skipped), or failed / timeout",
      labelNames: ["model", "decision"],
      registers,
    });
    this.updateSeconds = new Histogram({
      name: "recsys_online_update_seconds",
      help: "Wall time of one model's online update (the Python trainer process), failures included",
      labelNames: ["model"],
      buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    });
    this.lastPublish = new Gauge({
      name: "recsys_online_last_publish_timestamp_seconds",
      help: "When the online update last published a new version of the model (Unix seconds)",
      labelNames: ["model"],
      registers,
    });
    this.lastUpdate = new Gauge({
      name: "recsys_online_last_update_timestamp_seconds",
      help: "When an online update of the model last finished without failing (Unix seconds)",
      labelNames: ["model"],
      registers,
    });
    this.buffered = new Gauge({
      name: "recsys_online_samples_buffered",
      help: "Samples waiting for the next online update (those of an update in progress included)",
      registers,
    });
    this.samples = new Counter({
      name: "recsys_online_samples_total",
      help: "Samples read: buffered, already_trained (before a restart), duplicate, dropped (buffer full), consumed (by an update)",
      labelNames: ["outcome"],
      registers,
    });
    this.feedback = new Counter({
      name: "recsys_online_feedback_events_total",
      help: "Feedback events read for the histories: applied, duplicate (event id seen before), ignored (type not in histories)",
      labelNames: ["outcome"],
      registers,
    });
    this.badRecords = new Counter({
      name: "recsys_online_bad_records_total",
      help: "Records that could not be decoded or lack required fields (skipped)",
      labelNames: ["topic"],
      registers,
    });
  }

  private static readonly byRegistry = new WeakMap<Metrics, OnlineMetrics>();

  static of(metrics: Metrics): OnlineMetrics {
    let m = OnlineMetrics.byRegistry.get(metrics);
    if (!m) OnlineMetrics.byRegistry.set(metrics, (m = new OnlineMetrics(metrics)));
    return m;
  }
}
