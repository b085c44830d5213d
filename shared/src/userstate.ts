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
  /** Oldest first, at most the store's sequence length. */
  readonly history: HistoryRow[];
}

export interface UserStateStore {
  readonly kind: string;
  get(userId: string, maxEvents?: number): Promise<UserState>;
  /** Appends events (time-ordered); the sequence stays bounded. */
  append(userId: string, events: readonly HistoryRow[]): Promise<void>;
  /** Number of users, for logs and metrics. */
  size(): Promise<number>;
}

export class InMemoryUserStateStore implements UserStateStore {
  readonly kind = "memory";
  private readonly sequences = new Map<string, HistoryRow[]>();

  constructor(private readonly maxSequenceLength = 256) {}

  static fromInteractions(interactions: readonly Interaction[], maxSequenceLength = 256): InMemoryUserStateStore {
    const store = new InMemoryUserStateStore(maxSequenceLength);
    for (const r of interactions) {
      let seq = store.sequences.get(r.userId);
      if (!seq) store.sequences.set(r.userId, (seq = []));
      seq.push({ itemId: r.itemId, timestampMs: r.timestampMs, type: EventType.RATING, value: r.rating });
    }
    for (const seq of store.sequences.values()) {
      if (seq.length > maxSequenceLength) seq.splice(0, seq.length - maxSequenceLength);
    }
    return store;
  }

  async get(userId: string, maxEvents = this.maxSequenceLength): Promise<UserState> {
    const seq = this.sequences.get(userId);
    if (!seq) return { known: false, history: [] };
    return { known: true, history: seq.slice(Math.max(0, seq.length - maxEvents)) };
  }

  async append(userId: string, events: readonly HistoryRow[]): Promise<void> {
    let seq = this.sequences.get(userId);
    if (!seq) this.sequences.set(userId, (seq = []));
    seq.push(...events);
    if (seq.length > this.maxSequenceLength) seq.splice(0, seq.length - this.maxSequenceLength);
  }

  async size(): Promise<number> {
    return this.sequences.size;
  }
}
