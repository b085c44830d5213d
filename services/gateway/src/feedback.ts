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
  return req.events.map((e, i) => {
    requireId(e.userId, `events[${i}].user_id`);
    requireId(e.itemId, `events[${i}].item_id`);
    if (e.eventId) requireId(e.eventId, `events[${i}].event_id`);
    if (e.requestId) requireId(e.requestId, `events[${i}].request_id`);
    if (e.type === EventType.UNSPECIFIED || EventType[e.type] === undefined) {
      throw invalidArgument(`events[${i}].type`, "must be a known event type");
    }
    if (!Number.isFinite(e.value)) throw invalidArgument(`events[${i}].value`, "must be finite");
    if (e.timestamp < 0n) throw invalidArgument(`events[${i}].timestamp`, "must not be negative");
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
