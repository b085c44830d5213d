/**
 * Joins impressions with feedback into labelled training samples.
 *
 * Every item of an impression becomes one sample once its attribution window
 * (impression time + window) has passed: labels click=1 when the user
 * engaged with the item (click, watch, like, share, rating) within the
 * window, like=1 for likes, shares and ratings at or above the threshold;
 * items shown but not engaged with are negatives (all labels 0).
 *
 * Feedback is matched by request id (FeedbackEvent.request_id) when given,
 * otherwise to the user's most recent pending impression that showed the
 * item. Feedback read before its impression (the topics are consumed
 * independently) is held for one window and applied when the impression
 * arrives.
 *
 * Time is event time: a window closes when the newest record time seen on
 * either topic passes it, or, when the consumer is idle (caught up), when the
 * wall clock does. Catching up on a backlog therefore does not close windows
 * before their feedback was read.
 *
 * Pending impressions live in memory: after a restart of the process the
 * windows that were open are lost (their samples are not written). The
 * trainer treats samples as a best-effort stream.
 */
import { create } from "@bufbuild/protobuf";
import type { Logger } from "@recsys/shared";
import { type EventBus, encodeRecord, TOPICS } from "@recsys/shared/bus";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import {
  type Feedback,
  type Impression,
  type Sample,
  SampleSchema,
} from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import type { StreamMetrics } from "./metrics.js";

export interface SampleJoinerOptions {
  readonly bus: EventBus;
  /** Physical name of the samples topic. */
  readonly samplesTopic: string;
  readonly attributionWindowMs: number;
  /** Ratings at or above count as like. */
  readonly likeRatingThreshold?: number;
  /** Open impressions kept at most; beyond, the oldest are closed early. */
  readonly maxPending?: number;
  /**
   * Feedback waiting for its impression kept at most (default 50,000); beyond, the oldest is given
   * up (counted as outcome "orphan_dropped"): each new impression is matched against all of them.
   */
  readonly maxOrphans?: number;
  /**
   * Closed samples held while the bus refuses them (default 100,000); at the cap the samples
   * consumer waits (`waitForRoom`) instead of growing memory, and the backlog stays on the bus.
   */
  readonly maxOutbox?: number;
  /** Feedback may be stamped slightly before its impression (clock skew between gateways). */
  readonly clockSkewMs?: number;
  readonly logger: Logger;
  readonly metrics?: StreamMetrics;
}

/** Label bits of an item in PendingImpression.labels. */
const CLICK = 1;
const LIKE = 2;

/**
 * An open impression, kept compact: thousands are open at once (one per
 * Recommend answer for the whole attribution window), so items are parallel
 * arrays, not a Map of 20 small objects (the item id strings are then most
 * of what an open impression holds).
 */
interface PendingImpression {
  readonly requestId: string;
  readonly userId: string;
  readonly shownAtMs: number;
  readonly closesAtMs: number;
  /** Distinct item ids, in the order shown. */
  readonly itemIds: readonly string[];
  readonly positions: readonly number[];
  /** Per item: CLICK | LIKE bits. */
  readonly labels: Uint8Array;
}

/** Labels a feedback event sets (undefined: none). */
export function labelsOf(type: EventType, value: number, likeRatingThreshold = 4) {
  switch (type) {
    case EventType.CLICK:
    case EventType.WATCH:
      return { click: 1, like: 0 };
    case EventType.LIKE:
    case EventType.SHARE:
      return { click: 1, like: 1 };
    case EventType.RATING:
      return { click: 1, like: value >= likeRatingThreshold ? 1 : 0 };
    default:
      return undefined; // impressions, skips and dislikes leave the sample negative
  }
}

export class SampleJoiner {
  private readonly pending = new Map<string, PendingImpression>();
  /** Open impressions in arrival order (closing order, up to skew). */
  private queue: PendingImpression[] = [];
  private queueHead = 0;
  private readonly byUser = new Map<string, PendingImpression[]>();
  /** Feedback that arrived before its impression, by request id or user. */
  private orphans: Array<{ fb: Feedback; atMs: number }> = [];
  /** Request ids of impressions already closed: a replayed duplicate is ignored. */
  private readonly closed = new Set<string>();
  private closedOrder: string[] = [];
  private outbox: Sample[] = [];
  private watermarkMs = 0;
  private lastRecordAt = 0;

  constructor(private readonly options: SampleJoinerOptions) {}

  get openImpressions(): number {
    return this.pending.size;
  }

  onImpression(imp: Impression, recordTimeMs: number): void {
    this.advance(recordTimeMs);
    if (this.pending.has(imp.requestId) || this.closed.has(imp.requestId)) return; // duplicate delivery
    const shownAtMs = Number(imp.timestampMs) || recordTimeMs;
    const itemIds: string[] = [];
    const positions: number[] = [];
    for (const it of imp.items) {
      if (itemIds.includes(it.itemId)) continue; // an item once per impression
      itemIds.push(it.itemId);
      positions.push(it.position);
    }
    const p: PendingImpression = {
      requestId: imp.requestId,
      userId: imp.userId,
      shownAtMs,
      closesAtMs: shownAtMs + this.options.attributionWindowMs,
      itemIds,
      positions,
      labels: new Uint8Array(itemIds.length),
    };
    this.pending.set(p.requestId, p);
    this.queue.push(p);
    let list = this.byUser.get(p.userId);
    if (!list) this.byUser.set(p.userId, (list = []));
    list.push(p);
    if (this.orphans.length > 0) {
      const stillOrphans: typeof this.orphans = [];
      for (const o of this.orphans) if (!this.attribute(o.fb, o.atMs)) stillOrphans.push(o);
      this.orphans = stillOrphans;
    }
    const max = this.options.maxPending ?? 200_000;
    while (this.pending.size > max) this.close(this.queue[this.queueHead++]!);
  }

  onFeedback(fb: Feedback, recordTimeMs: number): void {
    this.advance(recordTimeMs);
    if (labelsOf(fb.type, fb.value, this.options.likeRatingThreshold) === undefined) return;
    const atMs = Number(fb.receivedAtMs) || recordTimeMs;
    if (this.attribute(fb, atMs)) return;
    this.orphans.push({ fb, atMs });
    const max = this.options.maxOrphans ?? 50_000;
    if (this.orphans.length > max) {
      const dropped = this.orphans.length - max;
      this.orphans.splice(0, dropped);
      this.options.metrics?.events.inc({ outcome: "orphan_dropped" }, dropped);
    }
  }

  /** Closed samples waiting to be published. */
  get outboxSize(): number {
    return this.outbox.length;
  }

  /**
   * Resolves once the outbox is below its cap: the samples consumer awaits this before each
   * batch, so a bus that refuses samples stalls consumption (the records stay on the bus) instead
   * of filling memory. Publishing retries on every tick.
   */
  async waitForRoom(signal?: AbortSignal): Promise<void> {
    const max = this.options.maxOutbox ?? 100_000;
    // the processor's tick publishes (and retries) the outbox meanwhile
    while (this.outbox.length >= max && !signal?.aborted) await new Promise((r) => setTimeout(r, 100));
  }

  /** Applies feedback to its impression; false when no open impression matches (yet). */
  private attribute(fb: Feedback, atMs: number): boolean {
    const skew = this.options.clockSkewMs ?? 5_000;
    const inWindow = (p: PendingImpression) => atMs >= p.shownAtMs - skew && atMs <= p.closesAtMs;
    let target: PendingImpression | undefined;
    let at = -1;
    if (fb.requestId) {
      const p = this.pending.get(fb.requestId);
      if (p && inWindow(p)) {
        at = p.itemIds.indexOf(fb.itemId);
        if (at >= 0) target = p;
      }
    } else {
      const list = this.byUser.get(fb.userId) ?? [];
      for (let i = list.length - 1; i >= 0 && !target; i--) {
        const p = list[i]!;
        if (!inWindow(p)) continue;
        at = p.itemIds.indexOf(fb.itemId);
        if (at >= 0) target = p;
      }
    }
    if (!target) return false;
    const labels = labelsOf(fb.type, fb.value, this.options.likeRatingThreshold)!;
    target.labels[at]! |= (labels.click ? CLICK : 0) | (labels.like ? LIKE : 0);
    return true;
  }

  private advance(recordTimeMs: number): void {
    if (recordTimeMs > this.watermarkMs) this.watermarkMs = recordTimeMs;
    this.lastRecordAt = Date.now();
  }

  /**
   * Closes the windows that have passed and writes their samples. Called on a
   * timer. `idleMs`: with no record for that long, the consumer is caught up
   * and the wall clock may close windows.
   */
  async tick(nowMs = Date.now(), idleMs = 1_000): Promise<number> {
    if (nowMs - this.lastRecordAt >= idleMs && nowMs > this.watermarkMs) this.watermarkMs = nowMs;
    while (this.queueHead < this.queue.length) {
      const p = this.queue[this.queueHead]!;
      if (!this.pending.has(p.requestId)) {
        this.queueHead++;
        continue;
      }
      if (p.closesAtMs > this.watermarkMs) break;
      this.queueHead++;
      this.close(p);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    const horizon = this.watermarkMs - this.options.attributionWindowMs;
    if (this.orphans.length > 0) this.orphans = this.orphans.filter((o) => o.atMs >= horizon);
    return this.publishOutbox();
  }

  private close(p: PendingImpression): void {
    this.pending.delete(p.requestId);
    const list = this.byUser.get(p.userId);
    if (list) {
      const i = list.indexOf(p);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byUser.delete(p.userId);
    }
    this.closed.add(p.requestId);
    this.closedOrder.push(p.requestId);
    if (this.closedOrder.length > 100_000) {
      for (const id of this.closedOrder.splice(0, 50_000)) this.closed.delete(id);
    }
    for (let i = 0; i < p.itemIds.length; i++) {
      const bits = p.labels[i]!;
      this.outbox.push(
        create(SampleSchema, {
          userId: p.userId,
          itemId: p.itemIds[i]!,
          timestampMs: BigInt(p.shownAtMs),
          requestId: p.requestId,
          labels: { click: bits & CLICK ? 1 : 0, like: bits & LIKE ? 1 : 0 },
          position: p.positions[i]!,
        }),
      );
    }
  }

  /** Publishes closed samples; keeps them for the next tick when the bus fails. */
  private async publishOutbox(): Promise<number> {
    if (this.outbox.length === 0) return 0;
    const batch = this.outbox.slice(0, 5_000);
    try {
      await this.options.bus.publish(
        this.options.samplesTopic,
        batch.map((s) => encodeRecord(TOPICS.samples, s)),
        { sync: false },
      );
    } catch (err) {
      this.options.logger.warn({ err, waiting: this.outbox.length }, "samples: publish failed, will retry");
      return 0;
    }
    this.outbox = this.outbox.slice(batch.length);
    const m = this.options.metrics;
    if (m) {
      for (const s of batch) {
        const label = s.labels.like ? "like" : s.labels.click ? "click" : "negative";
        m.samples.inc({ label });
      }
    }
    return batch.length;
  }
}
