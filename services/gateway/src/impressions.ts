/**
 * ImpressionLogSideEffect: every Recommend response becomes an Impression on
 * the impressions topic, off the response path. `record` only pushes a plain
 * object into a bounded in-memory buffer; a background flusher encodes and
 * publishes batches. The publisher spills to local disk while Kafka is
 * unavailable and replays afterwards; only when the buffer itself is full
 * (the disk cannot keep up either) are impressions dropped, and counted
 * (recsys_bus_dropped_total{reason="buffer_full"}).
 */
import { create } from "@bufbuild/protobuf";
import type { Logger } from "@recsys/shared";
import { type BusMetrics, type BusRecord, encodeRecord, pause, TOPICS } from "@recsys/shared/bus";
import { ImpressionSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";

export interface ShownList {
  readonly requestId: string;
  readonly userId: string;
  readonly scene: string;
  readonly timestampMs: number;
  readonly items: ReadonlyArray<{
    readonly itemId: string;
    readonly score: number;
    readonly channels: readonly string[];
  }>;
  readonly experimentVariant: string;
  readonly modelVersions: Readonly<Record<string, string>>;
  readonly degradations: readonly string[];
}

export interface ImpressionLogOptions {
  /** Best-effort publish (no fsync per batch); rejects when the records could not be stored at all. */
  readonly publish: (records: readonly BusRecord[]) => Promise<unknown>;
  /** Physical topic name, for metrics. */
  readonly topic: string;
  /** Impressions held in memory at most. */
  readonly capacity: number;
  readonly batchSize?: number;
  /** How long a partial batch may wait. */
  readonly lingerMs?: number;
  readonly logger: Logger;
  readonly metrics?: BusMetrics;
}

export class ImpressionLogSideEffect {
  private buffer: ShownList[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: ImpressionLogOptions) {}

  /** Called after a response is computed; never blocks, never throws. */
  record(shown: ShownList): void {
    if (this.closed) return;
    if (this.buffer.length >= this.options.capacity) {
      this.options.metrics?.droppedTotal.inc({ topic: this.options.topic, reason: "buffer_full" });
      return;
    }
    this.buffer.push(shown);
    this.options.metrics?.bufferedRecords.set({ topic: this.options.topic }, this.buffer.length);
    if (this.buffer.length >= (this.options.batchSize ?? 256)) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.options.lingerMs ?? 20);
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
      if (this.buffer.length > 0 && !this.closed) this.kick();
    });
  }

  private async drain(): Promise<void> {
    const batchSize = this.options.batchSize ?? 256;
    let failures = 0;
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, batchSize);
      const records = batch.map((s) =>
        encodeRecord(
          TOPICS.impressions,
          create(ImpressionSchema, {
            requestId: s.requestId,
            userId: s.userId,
            timestampMs: BigInt(s.timestampMs),
            scene: s.scene,
            items: s.items.map((it, position) => ({
              itemId: it.itemId,
              position,
              score: it.score,
              channels: [...it.channels],
            })),
            experimentVariant: s.experimentVariant,
            modelVersions: { ...s.modelVersions },
            degradations: [...s.degradations],
          }),
          s.timestampMs,
        ),
      );
      try {
        await this.options.publish(records);
        failures = 0;
      } catch (err) {
        // Neither Kafka nor the spill disk took them: keep them (the buffer
        // bound still applies to new ones) and try again shortly.
        failures++;
        if (failures === 1) this.options.logger.warn({ err }, "impression log: publish failed; retrying");
        if (this.closed) return;
        await pause(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)));
        continue;
      }
      this.buffer.splice(0, batch.length);
      this.options.metrics?.bufferedRecords.set({ topic: this.options.topic }, this.buffer.length);
    }
  }

  /** Publishes what is buffered (shutdown). Impressions still failing after `timeoutMs` are counted as dropped. */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.buffer.length > 0) this.kick();
    const deadline = Date.now() + timeoutMs;
    while (this.flushing && Date.now() < deadline) await Promise.race([this.flushing, pause(100)]);
    this.closed = true;
    if (this.buffer.length > 0) {
      this.options.metrics?.droppedTotal.inc(
        { topic: this.options.topic, reason: "shutdown" },
        this.buffer.length,
      );
      this.buffer = [];
    }
  }
}
