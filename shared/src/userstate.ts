/**
 * The user-state store: each user's recent behaviour sequence. The in-memory
 * implementation is the single-machine default; a Redis implementation plugs
 * in behind the same interface.
 */
import type { Interaction } from "./data/dataset.js";
import type { HistoryRow } from "./funnel/types.js";
import { EventType } from "./gen/recsys/common/v1/common_pb.js";

export interface UserState {
  /** False when the store has never seen the user. */
  readonly known: boolean;
  /** Oldest first, at most `maxEvents`. */
  readonly history: HistoryRow[];
  /** Items interacted with before the returned history (bounded by the store). */
  readonly earlierSeenItemIds: string[];
  /**
   * True when the store could not be reached and this is the last state this
   * process read for the user (possibly stale): serve it, but flag it.
   */
  readonly unavailable?: boolean;
}

/** A behaviour event with its idempotency key (FeedbackEvent.event_id). */
export interface UserEvent extends HistoryRow {
  readonly eventId: string;
}

export interface UserStateStore {
  readonly kind: string;
  get(userId: string, maxEvents?: number): Promise<UserState>;
  /** Appends events (time-ordered); the sequence stays bounded. */
  append(userId: string, events: readonly HistoryRow[]): Promise<void>;
  /**
   * Appends the events whose ids the store has not applied yet and returns
   * those, so a replayed or duplicated event changes nothing. Ids are
   * remembered for a bounded window (per user, see each store).
   */
  appendOnce(userId: string, events: readonly UserEvent[]): Promise<UserEvent[]>;
  /** Number of users, for logs and metrics. */
  size(): Promise<number>;
}

export class InMemoryUserStateStore implements UserStateStore {
  readonly kind = "memory";
  private readonly sequences = new Map<string, HistoryRow[]>();
  /** Every item each user interacted with, in first-seen order (bounded). */
  private readonly seen = new Map<string, Set<string>>();
  /** Event ids applied per user, oldest first (bounded by `maxEventIds`). */
  private readonly applied = new Map<string, Set<string>>();

  /** Users dropped to stay within `maxUsers`, least recently used first. */
  evictions = 0;

  constructor(
    private readonly maxSequenceLength = 256,
    private readonly maxSeenItems = 10_000,
    private readonly maxEventIds = 4_096,
    /**
     * Users kept; past it the least recently used (read or written) user is dropped whole, as
     * from a cache: memory stays bounded however many user ids arrive. A store for more users
     * than fit in memory is Redis (RedisUserStateStore).
     */
    readonly maxUsers = 1_000_000,
  ) {}

  static fromInteractions(
    interactions: readonly Interaction[],
    maxSequenceLength = 256,
    maxUsers = 1_000_000,
  ): InMemoryUserStateStore {
    const store = new InMemoryUserStateStore(maxSequenceLength, undefined, undefined, maxUsers);
    const byUser = new Map<string, HistoryRow[]>();
    for (const r of interactions) {
      let rows = byUser.get(r.userId);
      if (!rows) byUser.set(r.userId, (rows = []));
      rows.push({ itemId: r.itemId, timestampMs: r.timestampMs, type: EventType.RATING, value: r.rating });
    }
    for (const [userId, rows] of byUser) void store.append(userId, rows);
    return store;
  }

  /** Users held now. */
  get users(): number {
    return this.sequences.size;
  }

  async get(userId: string, maxEvents = this.maxSequenceLength): Promise<UserState> {
    const seq = this.sequences.get(userId);
    if (!seq) return { known: false, history: [], earlierSeenItemIds: [] };
    this.touch(userId, seq);
    const history = seq.slice(Math.max(0, seq.length - maxEvents));
    const inHistory = new Set(history.map((e) => e.itemId));
    const earlierSeenItemIds = [...(this.seen.get(userId) ?? [])].filter((id) => !inHistory.has(id));
    return { known: true, history, earlierSeenItemIds };
  }

  /** Marks the user most recently used (Map order is the LRU order). */
  private touch(userId: string, seq: HistoryRow[]): void {
    this.sequences.delete(userId);
    this.sequences.set(userId, seq);
  }

  private evict(): void {
    while (this.sequences.size > this.maxUsers) {
      const oldest = this.sequences.keys().next().value as string;
      this.sequences.delete(oldest);
      this.seen.delete(oldest);
      this.applied.delete(oldest);
      this.evictions++;
    }
  }

  async append(userId: string, events: readonly HistoryRow[]): Promise<void> {
    let seq = this.sequences.get(userId);
    if (!seq) {
      this.sequences.set(userId, (seq = []));
      this.evict();
    } else this.touch(userId, seq);
    seq.push(...events);
    if (seq.length > this.maxSequenceLength) seq.splice(0, seq.length - this.maxSequenceLength);
    let seen = this.seen.get(userId);
    if (!seen) this.seen.set(userId, (seen = new Set()));
    for (const e of events) {
      seen.delete(e.itemId); // re-insert: most recent last
      seen.add(e.itemId);
    }
    while (seen.size > this.maxSeenItems) seen.delete(seen.values().next().value as string);
  }

  async appendOnce(userId: string, events: readonly UserEvent[]): Promise<UserEvent[]> {
    let ids = this.applied.get(userId);
    if (!ids) this.applied.set(userId, (ids = new Set()));
    const fresh: UserEvent[] = [];
    for (const e of events) {
      if (ids.has(e.eventId)) continue;
      ids.add(e.eventId);
      fresh.push(e);
    }
    while (ids.size > this.maxEventIds) ids.delete(ids.values().next().value as string);
    if (fresh.length > 0) await this.append(userId, fresh);
    return fresh;
  }

  async size(): Promise<number> {
    return this.sequences.size;
  }
}
