/**
 * In-process views of the funnel's wire types. Stages work on plain objects;
 * the columnar CandidateBatch / UserContext messages exist only on the wire
 * (see codec.ts).
 */
import { type EventType, EventType as EventTypeValues } from "../gen/recsys/common/v1/common_pb.js";

export interface HistoryRow {
  readonly itemId: string;
  /** Unix epoch milliseconds. */
  readonly timestampMs: number;
  readonly type: EventType;
  /** Rating, watch seconds, ... (0 when not applicable). */
  readonly value: number;
}

export interface UserView {
  readonly userId: string;
  readonly known: boolean;
  readonly blockedItemIds: readonly string[];
  /** Oldest first. */
  readonly history: readonly HistoryRow[];
  /** Items seen before the history window (filtered as seen, no features). */
  readonly earlierSeenItemIds: readonly string[];
}

export interface Candidate {
  readonly itemId: string;
  /** Score of the last stage that scored the candidate. */
  score: number;
  /** Best normalised recall channel score. */
  recallScore: number;
  prerankScore: number;
  /** Recall channels that produced the item. */
  channels: string[];
  /** Index into the user's history of the event behind the recall; -1 none. */
  reasonIndex: number;
  /** Per-task scores from rank. */
  taskScores: Record<string, number>;
  /** Human-readable reason (rerank). */
  reason: string;
}

export function newCandidate(itemId: string, init: Partial<Omit<Candidate, "itemId">> = {}): Candidate {
  return {
    itemId,
    score: init.score ?? 0,
    recallScore: init.recallScore ?? 0,
    prerankScore: init.prerankScore ?? 0,
    channels: init.channels ?? [],
    reasonIndex: init.reasonIndex ?? -1,
    taskScores: init.taskScores ?? {},
    reason: init.reason ?? "",
  };
}

/**
 * Whether an event is evidence the user liked the item: skips and dislikes
 * are not, ratings below `likeThreshold` are not, other engagement is.
 */
export function isPositiveEvent(e: HistoryRow, likeThreshold = 3): boolean {
  switch (e.type) {
    case EventTypeValues.SKIP:
    case EventTypeValues.DISLIKE:
    case EventTypeValues.IMPRESSION:
      return false;
    case EventTypeValues.RATING:
      return e.value >= likeThreshold;
    default:
      return true;
  }
}
