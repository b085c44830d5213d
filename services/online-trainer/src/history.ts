/**
 * Every user's behaviour as the online trainer sees it: the dataset's
 * interactions (the base history) plus the feedback events read from the
 * feedback topic, de-duplicated by event id, kept in time order.
 *
 * Only events that belong in a history are kept: impressions, skips and
 * dislikes (and events without a type) are not behaviour the ranking models
 * condition on. A sample's history is the user's kept events strictly before
 * the sample's time, the newest `max`, oldest first.
 */
import { EventType, type Interaction } from "@recsys/shared";

/** Event types left out of histories. */
export const NOT_IN_HISTORY: ReadonlySet<EventType> = new Set([
  EventType.UNSPECIFIED,
  EventType.IMPRESSION,
  EventType.SKIP,
  EventType.DISLIKE,
]);

export function inHistory(type: EventType): boolean {
  return !NOT_IN_HISTORY.has(type);
}

export interface FeedbackEvent {
  readonly eventId: string;
  readonly userId: string;
  readonly itemId: string;
  readonly type: EventType;
  /** The event's value (a rating's stars, seconds watched); 0 when it has none. */
  readonly value?: number;
  /** Unix epoch milliseconds. */
  readonly timestampMs: number;
}

/**
 * One history entry as the shard writes it: [item id, time ms, event type, value].
 * Type and value give the sequence model the same side information as serving
 * (a rating's bucket from its stars, a click or a like its own bucket).
 */
export type HistoryEntry = [itemId: string, timestampMs: number, type: EventType, value: number];

interface Sequence {
  readonly items: string[];
  readonly times: number[];
  readonly types: EventType[];
  readonly values: number[];
}

export class UserHistories {
  private readonly users = new Map<string, Sequence>();
  /** Ids of the feedback events kept (the only ones whose duplicates would change a history). */
  private readonly eventIds = new Set<string>();
  private eventCount = 0;

  /** Adds the dataset's interactions (ratings: always history events). */
  addBase(interactions: Iterable<Interaction>): void {
    for (const r of interactions) this.insert(r.userId, r.itemId, r.timestampMs, EventType.RATING, r.rating);
  }

  /**
   * Adds a feedback event: "applied", "duplicate" (its event id was applied
   * before) or "ignored" (a type histories leave out).
   */
  addFeedback(e: FeedbackEvent): "applied" | "duplicate" | "ignored" {
    if (!inHistory(e.type)) return "ignored";
    if (this.eventIds.has(e.eventId)) return "duplicate";
    this.eventIds.add(e.eventId);
    this.insert(e.userId, e.itemId, e.timestampMs, e.type, e.value ?? 0);
    return "applied";
  }

  /** The user's events strictly before `beforeMs`, the newest `max` of them, oldest first. */
  historyBefore(userId: string, beforeMs: number, max: number): HistoryEntry[] {
    const seq = this.users.get(userId);
    if (!seq || max <= 0) return [];
    const end = lowerBound(seq.times, beforeMs); // first event at or after beforeMs
    const out: HistoryEntry[] = [];
    for (let i = Math.max(0, end - max); i < end; i++)
      out.push([seq.items[i]!, seq.times[i]!, seq.types[i]!, seq.values[i]!]);
    return out;
  }

  get userCount(): number {
    return this.users.size;
  }

  get size(): number {
    return this.eventCount;
  }

  /** Keeps each user's events sorted by time; equal times stay in arrival order. */
  private insert(userId: string, itemId: string, timestampMs: number, type: EventType, value: number): void {
    let seq = this.users.get(userId);
    if (!seq) this.users.set(userId, (seq = { items: [], times: [], types: [], values: [] }));
    this.eventCount++;
    const n = seq.times.length;
    const at = n === 0 || seq.times[n - 1]! <= timestampMs ? n : upperBound(seq.times, timestampMs);
    seq.items.splice(at, 0, itemId);
    seq.times.splice(at, 0, timestampMs);
    seq.types.splice(at, 0, type);
    seq.values.splice(at, 0, value);
  }
}

/** First index whose value is >= x. */
function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose value is > x. */
function upperBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
