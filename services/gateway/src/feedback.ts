/**
 * FeedbackService.Report: validates the events, keeps the caller's event ids
 * (assigning one where empty), and answers only once every event is durable:
 * acknowledged by Kafka (acks=all), or fsync'd to the local spill log while
 * Kafka is unavailable, or fsync'd to the embedded bus. When none of that is
 * possible the call fails with UNAVAILABLE and the caller retries with the
 * same event ids (consumers de-duplicate by id), so a success is never
 * returned for an event that could be lost.
 *
 * The user-state store is updated by the stream processor from the feedback
 * topic, not here.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { invalidArgument, RpcError, requireId } from "@recsys/shared";
import { type BusRecord, encodeRecord, TOPICS } from "@recsys/shared/bus";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { type Feedback, FeedbackSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import type { ReportRequest } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

export const MAX_EVENTS_PER_REPORT = 1000;

/** Event times accepted: from 1990 (older data is not feedback) to a day ahead of the server's clock. */
export const EARLIEST_EVENT_MS = Date.UTC(1990, 0, 1);
export const MAX_EVENT_AHEAD_MS = 24 * 3600_000;

/** The range of `value` for each event type that carries one; other types accept |value| <= 1e6. */
const VALUE_RANGE: Partial<Record<EventType, readonly [number, number, string]>> = {
  [EventType.RATING]: [0, 10, "a rating"],
  [EventType.WATCH]: [0, 7 * 24 * 3600, "seconds watched (at most a week)"],
};

/** Where accepted feedback goes. */
export interface FeedbackSink {
  /** Resolves once the records are durable; rejects when they may not be. */
  publish(records: readonly BusRecord[]): Promise<unknown>;
  /** Optional: resolves once this process's own user state reflects the events (bounded wait). */
  applied?(eventIds: readonly string[]): Promise<void>;
}

/** Validates a Report request into Feedback messages (throws INVALID_ARGUMENT naming the field). */
export function toFeedback(req: ReportRequest, now = Date.now()): Feedback[] {
  if (req.events.length === 0) throw invalidArgument("events", "must not be empty");
  if (req.events.length > MAX_EVENTS_PER_REPORT) {
    throw invalidArgument("events", `at most ${MAX_EVENTS_PER_REPORT} per call, got ${req.events.length}`);
  }
  const firstWithId = new Map<string, number>();
  return req.events.map((e, i) => {
    requireId(e.userId, `events[${i}].user_id`);
    requireId(e.itemId, `events[${i}].item_id`);
    if (e.eventId) {
      requireId(e.eventId, `events[${i}].event_id`);
      const first = firstWithId.get(e.eventId);
      if (first !== undefined)
        throw invalidArgument(
          `events[${i}].event_id`,
          `repeats events[${first}].event_id in the same request`,
        );
      firstWithId.set(e.eventId, i);
    }
    if (e.requestId) requireId(e.requestId, `events[${i}].request_id`);
    if (e.type === EventType.UNSPECIFIED || EventType[e.type] === undefined) {
      throw invalidArgument(`events[${i}].type`, "must be a known event type");
    }
    if (!Number.isFinite(e.value)) throw invalidArgument(`events[${i}].value`, "must be finite");
    const [lo, hi, what] = VALUE_RANGE[e.type] ?? [-1e6, 1e6, "a value"];
    if (e.value < lo || e.value > hi)
      throw invalidArgument(
        `events[${i}].value`,
        `must be between ${lo} and ${hi} (${what}), got ${e.value}`,
      );
    if (e.timestamp !== 0n) {
      if (e.timestamp < BigInt(EARLIEST_EVENT_MS))
        throw invalidArgument(
          `events[${i}].timestamp`,
          "must be Unix epoch milliseconds from 1990 on (0 means now)",
        );
      if (e.timestamp > BigInt(now + MAX_EVENT_AHEAD_MS))
        throw invalidArgument(
          `events[${i}].timestamp`,
          "must not be more than 24 h ahead of the server's clock",
        );
    }
    return create(FeedbackSchema, {
      eventId: e.eventId || randomUUID(),
      userId: e.userId,
      itemId: e.itemId,
      type: e.type,
      value: e.value,
      timestampMs: e.timestamp === 0n ? BigInt(now) : e.timestamp,
      requestId: e.requestId,
      receivedAtMs: BigInt(now),
    });
  });
}

export async function handleReport(req: ReportRequest, sink: FeedbackSink): Promise<{ eventIds: string[] }> {
  const now = Date.now();
  const events = toFeedback(req, now);
  const eventIds = events.map((e) => e.eventId);
  try {
    await sink.publish(events.map((e) => encodeRecord(TOPICS.feedback, e, now)));
  } catch (err) {
    throw new RpcError(
      status.UNAVAILABLE,
      "feedback could not be stored durably; retry with the same event ids",
      { cause: err },
    );
  }
  await sink.applied?.(eventIds);
  return { eventIds };
}
