/** Stream-processing metrics (recsys_stream_*), on the process's Metrics registry. */

import { Counter, Histogram } from "@prometheus-io/client";
import { LATENCY_BUCKETS, type Metrics } from "@recsys/shared";

export class StreamMetrics {
  readonly events: Counter<"outcome">;
  readonly freshness: Histogram;
  readonly samples: Counter<"label">;
  readonly trendingUpdates: Counter;

  private constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.events = new Counter({
      name: "recsys_stream_feedback_events_total",
      help: "Feedback events handled by the user-state updater: applied, duplicate (event id seen before), ignored",
      labelNames: ["outcome"],
      registers,
    });
    this.freshness = new Histogram({
      name: "recsys_stream_feedback_to_state_seconds",
      help: "From the gateway accepting a feedback event to the event being in the user-state store",
      buckets: [...LATENCY_BUCKETS, 5, 10, 30, 60],
      registers,
    });
    this.samples = new Counter({
      name: "recsys_stream_samples_total",
      help: "Labelled samples written to the samples topic, by outcome (positive click, like, negative)",
      labelNames: ["label"],
      registers,
    });
    this.trendingUpdates = new Counter({
      name: "recsys_stream_trending_updates_total",
      help: "Engagement events counted into the trending scores",
      registers,
    });
  }

  private static readonly byRegistry = new WeakMap<Metrics, StreamMetrics>();

  static of(metrics: Metrics): StreamMetrics {
    let m = StreamMetrics.byRegistry.get(metrics);
    if (!m) StreamMetrics.byRegistry.set(metrics, (m = new StreamMetrics(metrics)));
    return m;
  }
}
