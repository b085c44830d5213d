/**
 * The stream processor: consumes the feedback and impressions topics and
 *   1. appends each feedback event to the user's sequence in the user-state
 *      store, once per event id (consumer group `<prefix>stream-user-state`),
 *   2. counts engagement into trending scores (only events applied now, so a
 *      replay never counts twice),
 *   3. joins impressions with feedback into labelled samples on the samples
 *      topic (consumer group `<prefix>stream-samples`).
 *
 * Runs as its own process (services/stream, with Kafka) or inside the
 * gateway (embedded bus, or a gateway whose user state is in its memory).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Logger, Metrics, UserEvent, UserStateStore } from "@recsys/shared";
import {
  BusMetrics,
  type ConsumedRecord,
  DeadLetters,
  decodeValid,
  type EventBus,
  type Subscription,
  TOPICS,
  type TopicNames,
} from "@recsys/shared/bus";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { type Feedback, FeedbackSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import { StreamMetrics } from "./metrics.js";
import { SampleJoiner } from "./samples.js";
import type { TrendingSink } from "./trending.js";

export interface StreamProcessorOptions {
  readonly bus: EventBus;
  readonly topics: TopicNames;
  readonly store: UserStateStore;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Consumer groups are `<groupPrefix>stream-user-state` and `<groupPrefix>stream-samples`. */
  readonly groupPrefix?: string;
  readonly userState?: {
    /**
     * False for a store that lives in this process's memory: positions are
     * not committed and every start replays the retained feedback (the
     * group id must then be unique to this process).
     */
    readonly commit: boolean;
    readonly groupId?: string;
  };
  /** Omitted: no samples. */
  readonly samples?: { readonly attributionWindowMs: number; readonly likeRatingThreshold?: number };
  /** Omitted: no trending counts. */
  readonly trending?: TrendingSink;
  /** Period of the sample-window and trending flush timer. */
  readonly tickMs?: number;
  /** Where records that cannot be decoded or used go (DeadLetters; default var/bus). */
  readonly deadLetterDir?: string;
}

export class StreamProcessor {
  private readonly subscriptions: Subscription[] = [];
  private userStateSubscription: Subscription | undefined;
  private readonly joiner: SampleJoiner | undefined;
  private readonly metrics: StreamMetrics;
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private lastTrendingFlush = 0;

  constructor(private readonly options: StreamProcessorOptions) {
    this.metrics = StreamMetrics.of(options.metrics);
    if (options.samples) {
      this.joiner = new SampleJoiner({
        bus: options.bus,
        samplesTopic: options.topics.of("samples"),
        attributionWindowMs: options.samples.attributionWindowMs,
        likeRatingThreshold: options.samples.likeRatingThreshold,
        logger: options.logger,
        metrics: this.metrics,
      });
    }
  }

  async start(): Promise<void> {
    const { bus, topics, userState } = this.options;
    const prefix = this.options.groupPrefix ?? "";
    const feedback = topics.of("feedback");
    const dead = (group: string) =>
      new DeadLetters(
        this.options.deadLetterDir ?? "var/bus",
        group,
        this.options.logger,
        BusMetrics.of(this.options.metrics),
      );
    if (userState) {
      const groupId = userState.groupId ?? `${prefix}stream-user-state`;
      const deadLetters = dead(groupId);
      this.userStateSubscription = await bus.subscribe({
        groupId,
        topics: [feedback],
        fromBeginning: true,
        commit: userState.commit,
        handle: (batch) =>
          this.applyFeedback(
            decodeValid(TOPICS.feedback.schema, feedback, batch, deadLetters, feedbackProblem),
          ),
      });
      this.subscriptions.push(this.userStateSubscription);
    }
    if (this.joiner) {
      const joiner = this.joiner;
      const impressions = topics.of("impressions");
      const deadLetters = dead(`${prefix}stream-samples`);
      this.subscriptions.push(
        await bus.subscribe({
          groupId: `${prefix}stream-samples`,
          topics: [impressions, feedback],
          fromBeginning: true,
          handle: async (batch) => {
            // samples the bus has not taken yet stay bounded: wait rather than hold more
            await joiner.waitForRoom(this.stopping.signal);
            for (const r of batch) {
              if (r.topic === impressions) {
                for (const { message } of decodeValid(
                  TOPICS.impressions.schema,
                  impressions,
                  [r],
                  deadLetters,
                ))
                  joiner.onImpression(message, r.timestampMs);
              } else {
                for (const { message } of decodeValid(
                  TOPICS.feedback.schema,
                  feedback,
                  [r],
                  deadLetters,
                  feedbackProblem,
                ))
                  joiner.onFeedback(message, r.timestampMs);
              }
            }
          },
        }),
      );
    }
    this.timer = setInterval(() => void this.tick(), this.options.tickMs ?? 500);
    this.timer.unref();
  }

  /** Resolves once every consumer has read what existed when it started (or false after `timeoutMs`). */
  async waitCaughtUp(timeoutMs: number): Promise<boolean> {
    const results = await Promise.all(this.subscriptions.map((s) => s.waitCaughtUp(timeoutMs)));
    return results.every(Boolean);
  }

  /**
   * Resolves once each event id has been applied to the user state (or found
   * to be a duplicate), or after `timeoutMs`. Lets an in-process gateway
   * answer Report only when its own next Recommend will see the events.
   */
  waitApplied(eventIds: readonly string[], timeoutMs: number): Promise<void> {
    if (eventIds.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let left = eventIds.length;
      const timer = setTimeout(finish, timeoutMs);
      const registered: Array<[string, () => void]> = [];
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      for (const id of eventIds) {
        const done = () => {
          if (--left === 0) finish();
        };
        let list = this.waiters.get(id);
        if (!list) this.waiters.set(id, (list = []));
        list.push(done);
        registered.push([id, done]);
      }
      // Forget waiters that time out, so the map cannot grow.
      timer.unref?.();
      setTimeout(() => {
        for (const [id, done] of registered) {
          const list = this.waiters.get(id);
          if (!list) continue;
          const rest = list.filter((d) => d !== done);
          if (rest.length === 0) this.waiters.delete(id);
          else this.waiters.set(id, rest);
        }
      }, timeoutMs + 10).unref();
    });
  }

  private async applyFeedback(
    batch: ReadonlyArray<{ record: ConsumedRecord; message: Feedback }>,
  ): Promise<void> {
    const byUser = new Map<string, UserEvent[]>();
    const seenIds: string[] = [];
    const receivedAt = new Map<string, number>();
    for (const { record: r, message: fb } of batch) {
      seenIds.push(fb.eventId);
      if (fb.type === EventType.IMPRESSION || fb.type === EventType.UNSPECIFIED) {
        this.metrics.events.inc({ outcome: "ignored" });
        continue;
      }
      let list = byUser.get(fb.userId);
      if (!list) byUser.set(fb.userId, (list = []));
      list.push({
        eventId: fb.eventId,
        itemId: fb.itemId,
        timestampMs: Number(fb.timestampMs) || r.timestampMs,
        type: fb.type,
        value: fb.value,
      });
      receivedAt.set(fb.eventId, Number(fb.receivedAtMs) || r.timestampMs);
    }
    const applied: UserEvent[] = [];
    let total = 0;
    // Users in parallel (each user's events stay in order within one call).
    await Promise.all(
      [...byUser].map(async ([userId, events]) => {
        total += events.length;
        const fresh = await this.options.store.appendOnce(userId, events);
        applied.push(...fresh);
      }),
    );
    const now = Date.now();
    // Freshness of live events only: a replay at start-up would report its backlog's age.
    if (this.userStateSubscription?.caughtUp()) {
      for (const e of applied)
        this.metrics.freshness.observe((now - (receivedAt.get(e.eventId) ?? now)) / 1000);
    }
    this.metrics.events.inc({ outcome: "applied" }, applied.length);
    this.metrics.events.inc({ outcome: "duplicate" }, total - applied.length);
    if (this.options.trending && applied.length > 0) {
      try {
        await this.options.trending.add(applied);
        this.metrics.trendingUpdates.inc(applied.length);
      } catch (err) {
        // Trending is best effort: it must not hold back the user state.
        this.options.logger.warn({ err }, "trending update failed");
      }
    }
    for (const id of seenIds) {
      const list = this.waiters.get(id);
      if (!list) continue;
      this.waiters.delete(id);
      for (const done of list) done();
    }
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.joiner?.tick();
      const now = Date.now();
      if (this.options.trending && now - this.lastTrendingFlush >= 5_000) {
        this.lastTrendingFlush = now;
        await this.options.trending.flush();
      }
    } catch (err) {
      this.options.logger.warn({ err }, "stream tick failed");
    } finally {
      this.ticking = false;
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.subscriptions.map((s) => s.stop()));
    this.subscriptions.length = 0;
    await this.joiner?.tick(Date.now(), Number.POSITIVE_INFINITY); // publish what already closed
    await this.options.trending?.close();
  }
}

/** A Feedback message as the gateway produces it (tests and benchmarks). */
export function feedbackMessage(
  init: MessageInitShape<typeof FeedbackSchema> & { eventId: string; userId: string; itemId: string },
): Feedback {
  return create(FeedbackSchema, { type: EventType.CLICK, receivedAtMs: BigInt(Date.now()), ...init });
}

/** Why a decoded feedback record cannot be applied (a producer that skipped the gateway's checks). */
function feedbackProblem(fb: Feedback): string | undefined {
  if (!fb.userId || !fb.itemId) return "feedback without user_id or item_id";
  if (!fb.eventId) return "feedback without event_id";
  return undefined;
}
