/**
 * FeedbackService: validates events and assigns missing event ids. Until the
 * event bus lands (Kafka issue), accepted events are applied straight to the
 * gateway's user-state store, so the next Recommend sees them; they are not
 * yet durable across a gateway restart.
 */
import { randomUUID } from "node:crypto";
import { type HistoryRow, invalidArgument, requireId, type UserStateStore } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import type { ReportRequest } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

export const MAX_EVENTS_PER_REPORT = 1000;

export async function handleReport(
  req: ReportRequest,
  store: UserStateStore,
): Promise<{ eventIds: string[] }> {
  if (req.events.length === 0) throw invalidArgument("events", "must not be empty");
  if (req.events.length > MAX_EVENTS_PER_REPORT) {
    throw invalidArgument("events", `at most ${MAX_EVENTS_PER_REPORT} per call, got ${req.events.length}`);
  }
  const now = Date.now();
  const eventIds: string[] = [];
  for (const [i, e] of req.events.entries()) {
    requireId(e.userId, `events[${i}].user_id`);
    requireId(e.itemId, `events[${i}].item_id`);
    if (e.eventId) requireId(e.eventId, `events[${i}].event_id`);
    if (e.type === EventType.UNSPECIFIED || EventType[e.type] === undefined) {
      throw invalidArgument(`events[${i}].type`, "must be a known event type");
    }
    if (!Number.isFinite(e.value)) throw invalidArgument(`events[${i}].value`, "must be finite");
    if (e.timestamp < 0n) throw invalidArgument(`events[${i}].timestamp`, "must not be negative");
    eventIds.push(e.eventId || randomUUID());
  }
  const byUser = new Map<string, HistoryRow[]>();
  for (const e of req.events) {
    if (e.type === EventType.IMPRESSION) continue; // exposure, not behaviour
    let list = byUser.get(e.userId);
    if (!list) byUser.set(e.userId, (list = []));
    list.push({
      itemId: e.itemId,
      timestampMs: e.timestamp === 0n ? now : Number(e.timestamp),
      type: e.type,
      value: e.value,
    });
  }
  for (const [userId, events] of byUser) await store.append(userId, events);
  return { eventIds };
}
