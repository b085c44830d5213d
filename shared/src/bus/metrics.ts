/**
 * Event-bus metrics (recsys_bus_*), registered on a service's Metrics
 * registry. One set per registry, however many buses or publishers use it.
 */
import { Counter, Gauge, Histogram } from "@prometheus-io/client";
import { LATENCY_BUCKETS, type Metrics } from "../metrics.js";

export class BusMetrics {
  readonly publishedTotal: Counter<"topic" | "path">;
  readonly poisonTotal: Counter<"group" | "topic">;
  readonly publishSeconds: Histogram<"topic" | "path">;
  readonly publishFailures: Counter<"topic">;
  readonly spilledTotal: Counter<"topic">;
  readonly replayedTotal: Counter<"topic">;
  readonly spillBacklogBytes: Gauge<"topic">;
  readonly droppedTotal: Counter<"topic" | "reason">;
  readonly bufferedRecords: Gauge<"topic">;
  readonly consumedTotal: Counter<"group" | "topic">;
  readonly logDamage: Counter<"log">;

  constructor(readonly metrics: Metrics) {
    const registers = [metrics.registry];
    this.logDamage = new Counter({
      name: "recsys_bus_log_damage_total",
      help: "Damaged regions of a local log (embedded bus topic, Kafka spill) found on open and quarantined",
      labelNames: ["log"],
      registers,
    });
    this.poisonTotal = new Counter({
      name: "recsys_bus_poison_records_total",
      help: "Records a consumer could not decode or use: skipped, written to the dead-letter file with offset and reason",
      labelNames: ["group", "topic"],
      registers,
    });
    this.publishedTotal = new Counter({
      name: "recsys_bus_published_total",
      help: "Records accepted by the bus, by topic and path (kafka, embedded, spill)",
      labelNames: ["topic", "path"],
      registers,
    });
    this.publishSeconds = new Histogram({
      name: "recsys_bus_publish_seconds",
      help: "Time until a publish was durably accepted, by topic and path",
      labelNames: ["topic", "path"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.publishFailures = new Counter({
      name: "recsys_bus_publish_failures_total",
      help: "Publishes to Kafka that failed or timed out (the records were spilled to disk)",
      labelNames: ["topic"],
      registers,
    });
    this.spilledTotal = new Counter({
      name: "recsys_bus_spilled_total",
      help: "Records written to the local spill log because Kafka was unavailable or behind",
      labelNames: ["topic"],
      registers,
    });
    this.replayedTotal = new Counter({
      name: "recsys_bus_replayed_total",
      help: "Spilled records replayed into Kafka",
      labelNames: ["topic"],
      registers,
    });
    this.spillBacklogBytes = new Gauge({
      name: "recsys_bus_spill_backlog_bytes",
      help: "Bytes spilled to disk and not yet replayed into Kafka",
      labelNames: ["topic"],
      registers,
    });
    this.droppedTotal = new Counter({
      name: "recsys_bus_dropped_total",
      help: "Records dropped before reaching the bus (best-effort topics only), by reason",
      labelNames: ["topic", "reason"],
      registers,
    });
    this.bufferedRecords = new Gauge({
      name: "recsys_bus_buffered_records",
      help: "Records waiting in an in-memory send buffer",
      labelNames: ["topic"],
      registers,
    });
    this.consumedTotal = new Counter({
      name: "recsys_bus_consumed_total",
      help: "Records handled by a consumer group",
      labelNames: ["group", "topic"],
      registers,
    });
  }

  private static readonly byRegistry = new WeakMap<Metrics, BusMetrics>();

  static of(metrics: Metrics): BusMetrics {
    let m = BusMetrics.byRegistry.get(metrics);
    if (!m) BusMetrics.byRegistry.set(metrics, (m = new BusMetrics(metrics)));
    return m;
  }

  published(topic: string, path: string, n: number, seconds: number): void {
    this.publishedTotal.inc({ topic, path }, n);
    this.publishSeconds.observe({ topic, path }, seconds);
  }

  consumed(group: string, topic: string, n: number): void {
    if (n > 0) this.consumedTotal.inc({ group, topic }, n);
  }
}
