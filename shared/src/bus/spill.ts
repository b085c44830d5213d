/**
 * Publishes to a primary bus (Kafka) and, when that fails or is too slow,
 * writes the records to a local spill log instead (EmbeddedLog, fsync'd when
 * asked), then replays the spill into the primary bus in the background once
 * it answers again. While a topic has a spill backlog, its new records go to
 * the spill too, so they reach Kafka in the order they were accepted.
 *
 * A publish resolves only once the records are in Kafka or on local disk:
 * nothing it acknowledged can be lost by a broker outage or a restart of
 * this process (the backlog is replayed at the next start).
 *
 * Delivery is at least once: a send that timed out may still land in Kafka
 * after its records were spilled, so they can arrive twice. Consumers
 * de-duplicate (feedback by event id, impressions by request id).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.js";
import { EmbeddedLog, type LogDamage } from "./log.js";
import type { BusMetrics } from "./metrics.js";
import { type BusRecord, type EventBus, type PublishOptions, pause, withTimeout } from "./port.js";

export interface SpillingPublisherOptions {
  readonly primary: EventBus;
  /** Directory of the spill logs (one sub-directory per topic). Local to this process. */
  readonly dir: string;
  readonly logger: Logger;
  readonly metrics?: BusMetrics;
  /** A primary publish slower than this is given up on and spilled. */
  readonly sendTimeoutMs?: number;
  /** Largest batch replayed in one publish, bytes. */
  readonly replayBatchBytes?: number;
  /** Called when a spill log had a damaged region, quarantined on open (the owner stops serving). */
  readonly onDamage?: (damage: LogDamage) => void;
}

export type PublishPath = "direct" | "spilled";

export class SpillingPublisher {
  private readonly spills = new Map<string, Promise<TopicSpill>>();
  private readonly abort = new AbortController();

  private constructor(private readonly options: SpillingPublisherOptions) {}

  /** Opens the spill directory and resumes replaying any backlog left by a previous run. */
  static async open(options: SpillingPublisherOptions): Promise<SpillingPublisher> {
    mkdirSync(options.dir, { recursive: true });
    const publisher = new SpillingPublisher(options);
    for (const entry of readdirSync(options.dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const spill = await publisher.spillFor(entry.name);
      if (spill.hasBacklog()) {
        options.logger.info(
          { topic: entry.name, bytes: spill.backlogBytes() },
          "spill backlog from a previous run: replaying into the primary bus",
        );
        spill.ensureReplaying();
      }
    }
    return publisher;
  }

  /** Resolves once the records are accepted by the primary bus or spilled to disk. */
  async publish(
    topic: string,
    records: readonly BusRecord[],
    options: PublishOptions = {},
  ): Promise<PublishPath> {
    if (records.length === 0) return "direct";
    const existing = this.spills.get(topic);
    const spillNow = existing ? (await existing).hasBacklog() : false;
    if (!spillNow) {
      try {
        await withTimeout(
          this.options.primary.publish(topic, records, options),
          this.options.sendTimeoutMs ?? 2_000,
          `publish to ${topic} timed out`,
        );
        return "direct";
      } catch (err) {
        this.options.metrics?.publishFailures.inc({ topic });
        this.options.logger.warn(
          { err, topic, records: records.length },
          "bus publish failed: spilling to disk",
        );
      }
    }
    const spill = await this.spillFor(topic);
    const t0 = performance.now();
    await spill.log.append(records, options.sync ?? true);
    this.options.metrics?.published(topic, "spill", records.length, (performance.now() - t0) / 1000);
    this.options.metrics?.spilledTotal.inc({ topic }, records.length);
    spill.ensureReplaying();
    return "spilled";
  }

  /** Bytes not yet replayed, per topic. */
  async backlog(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [topic, spill] of this.spills) out[topic] = (await spill).backlogBytes();
    return out;
  }

  private spillFor(topic: string): Promise<TopicSpill> {
    let spill = this.spills.get(topic);
    if (!spill) {
      spill = TopicSpill.open(topic, join(this.options.dir, topic), this.options, this.abort.signal);
      this.spills.set(topic, spill);
    }
    return spill;
  }

  /** Stops replaying (the backlog stays on disk for the next start) and closes the spill logs. */
  async close(): Promise<void> {
    this.abort.abort();
    for (const spill of this.spills.values()) await (await spill).close();
  }
}

class TopicSpill {
  private replaying: Promise<void> | undefined;

  private constructor(
    private readonly topic: string,
    readonly log: EmbeddedLog,
    private readonly dir: string,
    private replayed: number,
    private readonly options: SpillingPublisherOptions,
    private readonly signal: AbortSignal,
  ) {}

  static async open(
    topic: string,
    dir: string,
    options: SpillingPublisherOptions,
    signal: AbortSignal,
  ): Promise<TopicSpill> {
    const log = await EmbeddedLog.open(dir, {
      segmentBytes: 16 * 1024 * 1024,
      onDamage: (damage) => {
        options.logger.error(
          { ...damage, topic },
          "spill: a damaged region of the spill log was quarantined (its bytes are in quarantinedTo)",
        );
        options.metrics?.logDamage.inc({ log: `spill:${topic}` });
        options.onDamage?.(damage);
      },
    });
    let replayed = log.startOffset;
    try {
      replayed = Math.max(replayed, Number(readFileSync(join(dir, "REPLAYED"), "utf8")));
    } catch {
      // nothing replayed yet
    }
    return new TopicSpill(topic, log, dir, Math.min(replayed, log.endOffset), options, signal);
  }

  hasBacklog(): boolean {
    return this.replayed < this.log.endOffset;
  }

  backlogBytes(): number {
    return Math.max(0, this.log.endOffset - this.replayed);
  }

  ensureReplaying(): void {
    this.replaying ??= this.replay().finally(() => {
      this.replaying = undefined;
      // An append may have landed after the loop saw an empty backlog.
      if (this.hasBacklog() && !this.signal.aborted) this.ensureReplaying();
    });
  }

  private async replay(): Promise<void> {
    const { primary, logger, metrics } = this.options;
    let failures = 0;
    while (this.hasBacklog() && !this.signal.aborted) {
      metrics?.spillBacklogBytes.set({ topic: this.topic }, this.backlogBytes());
      const { records, next } = await this.log.read(
        this.replayed,
        this.options.replayBatchBytes ?? 256 * 1024,
      );
      try {
        await withTimeout(
          primary.publish(this.topic, records, { sync: true }),
          Math.max(5_000, this.options.sendTimeoutMs ?? 2_000),
          `replay to ${this.topic} timed out`,
        );
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0)
          logger.warn(
            { err, topic: this.topic, backlogBytes: this.backlogBytes() },
            "spill replay failed; retrying",
          );
        await pause(Math.min(2_000, 200 * 2 ** Math.min(failures, 4)), this.signal);
        continue;
      }
      if (failures > 0) logger.info({ topic: this.topic }, "primary bus is back: replaying the spill");
      failures = 0;
      this.replayed = next;
      this.saveReplayed();
      metrics?.replayedTotal.inc({ topic: this.topic }, records.length);
      await this.log.truncateBefore(this.replayed);
    }
    metrics?.spillBacklogBytes.set({ topic: this.topic }, this.backlogBytes());
    if (!this.hasBacklog()) logger.info({ topic: this.topic }, "spill replayed: publishing directly again");
  }

  private saveReplayed(): void {
    const path = join(this.dir, "REPLAYED");
    writeFileSync(`${path}.tmp`, String(this.replayed));
    renameSync(`${path}.tmp`, path);
  }

  async close(): Promise<void> {
    await this.replaying;
    await this.log.close();
  }
}
