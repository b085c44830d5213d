import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { createLogger, Metrics } from "@recsys/shared";
import { BusMetrics, type BusRecord, decodeRecord, TOPICS } from "@recsys/shared/bus";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { ReportRequestSchema } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { handleReport } from "./feedback.js";
import { ImpressionLogSideEffect, type ShownList } from "./impressions.js";

const decodeFeedback = (r: BusRecord) =>
  decodeRecord(TOPICS.feedback, { ...r, topic: "feedback", partition: 0, offset: "0" });

describe("FeedbackService.Report", () => {
  it("rejects bad events with INVALID_ARGUMENT naming the field", async () => {
    const sink = { publish: async () => {} };
    const ok = { userId: "u", itemId: "i", type: EventType.CLICK };
    const cases: Array<[string, Parameters<typeof create<typeof ReportRequestSchema>>[1], RegExp]> = [
      ["no events", { events: [] }, /^events: /],
      ["missing user", { events: [{ ...ok, userId: "" }] }, /^events\[0\]\.user_id: /],
      ["missing item", { events: [ok, { ...ok, itemId: "" }] }, /^events\[1\]\.item_id: /],
      ["unspecified type", { events: [{ ...ok, type: EventType.UNSPECIFIED }] }, /^events\[0\]\.type: /],
      ["unknown type", { events: [{ ...ok, type: 99 as EventType }] }, /^events\[0\]\.type: /],
      ["non-finite value", { events: [{ ...ok, value: Number.NaN }] }, /^events\[0\]\.value: /],
      ["negative timestamp", { events: [{ ...ok, timestamp: -1n }] }, /^events\[0\]\.timestamp: /],
      [
        "timestamp before 1990",
        { events: [{ ...ok, timestamp: 1_000n }] },
        /^events\[0\]\.timestamp: .*1990/,
      ],
      [
        "timestamp a century ahead",
        { events: [{ ...ok, timestamp: BigInt(Date.now() + 100 * 365 * 86_400_000) }] },
        /^events\[0\]\.timestamp: .*24 h ahead/,
      ],
      [
        "rating out of range",
        { events: [{ ...ok, type: EventType.RATING, value: 11 }] },
        /^events\[0\]\.value: /,
      ],
      [
        "negative watch time",
        { events: [{ ...ok, type: EventType.WATCH, value: -5 }] },
        /^events\[0\]\.value: /,
      ],
      ["unbounded value", { events: [{ ...ok, value: 1e300 }] }, /^events\[0\]\.value: /],
      [
        "repeated event id",
        {
          events: [
            { ...ok, eventId: "e1" },
            { ...ok, eventId: "e2" },
            { ...ok, eventId: "e1" },
          ],
        },
        /^events\[2\]\.event_id: repeats events\[0\]/,
      ],
      [
        "bidi control in an id",
        { events: [{ ...ok, itemId: "i\u202etxt.exe" }] },
        /^events\[0\]\.item_id: .*bidirectional/,
      ],
      [
        "zero-width character in an id",
        { events: [{ ...ok, userId: "u\u200b" }] },
        /^events\[0\]\.user_id: .*zero-width/,
      ],
      ["id not in NFC", { events: [{ ...ok, userId: "cafe\u0301" }] }, /^events\[0\]\.user_id: .*NFC/],
    ];
    for (const [name, req, pattern] of cases) {
      await assert.rejects(
        handleReport(create(ReportRequestSchema, req), sink),
        (e: { code: number; message: string }) =>
          e.code === status.INVALID_ARGUMENT && pattern.test(e.message),
        name,
      );
    }
  });

  it("accepts the edges: now (0), a day ahead, a 5-star rating, a composed id", async () => {
    const published: BusRecord[] = [];
    const sink = { publish: async (r: readonly BusRecord[]) => void published.push(...r) };
    const req = create(ReportRequestSchema, {
      events: [
        { userId: "café", itemId: "i", type: EventType.RATING, value: 5 },
        { userId: "u", itemId: "i", type: EventType.CLICK, timestamp: BigInt(Date.now() + 23 * 3_600_000) },
      ],
    });
    const res = await handleReport(req, sink);
    assert.equal(res.eventIds.length, 2);
    assert.equal(published.length, 2);
  });

  it("keeps caller event ids, assigns missing ones, and answers after the publish", async () => {
    const published: BusRecord[] = [];
    let appliedIds: readonly string[] = [];
    const res = await handleReport(
      create(ReportRequestSchema, {
        events: [
          {
            eventId: "mine",
            userId: "u1",
            itemId: "i1",
            type: EventType.LIKE,
            timestamp: 1_700_000_000_000n,
            requestId: "r",
          },
          { userId: "u2", itemId: "i2", type: EventType.WATCH, value: 30 },
        ],
      }),
      {
        publish: async (records) => {
          published.push(...records);
        },
        applied: async (ids) => {
          appliedIds = ids;
        },
      },
    );
    assert.equal(res.eventIds[0], "mine");
    assert.match(res.eventIds[1]!, /^[0-9a-f-]{36}$/);
    assert.deepEqual(appliedIds, res.eventIds);
    assert.equal(published.length, 2);
    assert.equal(published[0]!.key, "u1", "keyed by user id");
    const first = decodeFeedback(published[0]!);
    assert.equal(first.timestampMs, 1_700_000_000_000n);
    assert.equal(first.requestId, "r");
    const second = decodeFeedback(published[1]!);
    assert.ok(second.timestampMs > 0n, "timestamp 0 means now");
    assert.equal(second.receivedAtMs, second.timestampMs);
  });

  it("answers UNAVAILABLE when the events could not be made durable", async () => {
    await assert.rejects(
      handleReport(
        create(ReportRequestSchema, { events: [{ userId: "u", itemId: "i", type: EventType.CLICK }] }),
        {
          publish: async () => {
            throw new Error("disk full");
          },
        },
      ),
      (e: { code: number }) => e.code === status.UNAVAILABLE,
    );
  });
});

describe("ImpressionLogSideEffect", () => {
  const shown = (i: number): ShownList => ({
    requestId: `r${i}`,
    userId: `u${i}`,
    scene: "home",
    timestampMs: 1_000 + i,
    items: [{ itemId: "a", score: 1, channels: ["swing"] }],
    experimentVariant: "e/control",
    modelVersions: { rank: "v1" },
    degradations: [],
  });

  it("publishes recorded responses in batches, keyed by user", async () => {
    const published: BusRecord[] = [];
    const log = new ImpressionLogSideEffect({
      publish: async (records) => {
        published.push(...records);
      },
      topic: "impressions",
      capacity: 100,
      logger: createLogger("t", "silent"),
    });
    for (let i = 0; i < 5; i++) log.record(shown(i));
    await log.close();
    assert.equal(published.length, 5);
    const imp = decodeRecord(TOPICS.impressions, {
      ...published[3]!,
      topic: "impressions",
      partition: 0,
      offset: "0",
    });
    assert.equal(imp.requestId, "r3");
    assert.equal(imp.items[0]!.position, 0);
    assert.equal(published[3]!.key, "u3");
  });

  it("drops and counts when the buffer is full, and retries a failed publish", async () => {
    const metrics = new Metrics("t");
    let fail = true;
    const published: BusRecord[] = [];
    const log = new ImpressionLogSideEffect({
      publish: async (records) => {
        if (fail) throw new Error("nowhere to write");
        published.push(...records);
      },
      topic: "impressions",
      capacity: 3,
      lingerMs: 1,
      logger: createLogger("t", "silent"),
      metrics: BusMetrics.of(metrics),
    });
    for (let i = 0; i < 5; i++) log.record(shown(i));
    await new Promise((r) => setTimeout(r, 50));
    fail = false;
    await log.close();
    assert.deepEqual(
      published.map((r) => r.key),
      ["u0", "u1", "u2"],
    );
    assert.match(
      await metrics.registry.metrics(),
      /recsys_bus_dropped_total\{topic="impressions",reason="buffer_full",service="t"\} 2/,
    );
  });
});
