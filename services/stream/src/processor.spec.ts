import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { createLogger, InMemoryUserStateStore, Metrics } from "@recsys/shared";
import { decodeRecord, EmbeddedBus, encodeRecord, TOPICS, TopicNames } from "@recsys/shared/bus";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { ImpressionSchema, type Sample } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import { StreamMetrics } from "./metrics.js";
import { feedbackMessage, StreamProcessor } from "./processor.js";
import { SampleJoiner } from "./samples.js";
import { eventTime, FileTrendingSink, trendingWeight } from "./trending.js";

const logger = createLogger("test", "silent");

async function until(cond: () => Promise<boolean> | boolean, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!(await cond()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(await cond(), "condition not met in time");
}

function setup(windowMs = 300) {
  const dir = mkdtempSync(join(tmpdir(), "stream-"));
  const bus = EmbeddedBus.open({ dir: join(dir, "bus"), logger });
  const topics = new TopicNames("");
  const store = new InMemoryUserStateStore(100);
  const trendingFile = join(dir, "trending.json");
  const processor = new StreamProcessor({
    bus,
    topics,
    store,
    logger,
    metrics: new Metrics("stream-test"),
    userState: { commit: false },
    samples: { attributionWindowMs: windowMs },
    trending: new FileTrendingSink(trendingFile, 3_600_000, 100),
    tickMs: 50,
    deadLetterDir: join(dir, "bus"),
  });
  return { dir, bus, topics, store, processor, trendingFile };
}

describe("StreamProcessor (embedded bus, in-memory store)", () => {
  it("applies each feedback event once, even when delivered twice", async () => {
    const { bus, topics, store, processor } = setup();
    await processor.start();
    const fb = [
      feedbackMessage({ eventId: "e1", userId: "u1", itemId: "i1", type: EventType.CLICK }),
      feedbackMessage({ eventId: "e2", userId: "u1", itemId: "i2", type: EventType.LIKE }),
      feedbackMessage({ eventId: "e1", userId: "u1", itemId: "i1", type: EventType.CLICK }), // a replayed duplicate
      feedbackMessage({ eventId: "e3", userId: "u1", itemId: "i3", type: EventType.IMPRESSION }), // not behaviour
    ];
    await bus.publish(
      topics.of("feedback"),
      fb.map((m) => encodeRecord(TOPICS.feedback, m)),
    );
    await processor.waitApplied(["e1", "e2", "e3"], 2_000);
    const state = await store.get("u1");
    assert.deepEqual(
      state.history.map((h) => h.itemId),
      ["i1", "i2"],
    );
    await processor.stop();
    await bus.close();
  });

  it("skips a poison record, writes it to the dead-letter file, and goes on consuming", async () => {
    const { dir, bus, topics, store, processor } = setup();
    await processor.start();
    const good = (id: string, item: string) =>
      encodeRecord(
        TOPICS.feedback,
        feedbackMessage({ eventId: id, userId: "u9", itemId: item, type: EventType.CLICK }),
      );
    await bus.publish(topics.of("feedback"), [
      good("p1", "i1"),
      { key: "u9", value: new Uint8Array([0x0a, 0x40, 0x61]), timestampMs: Date.now() }, // truncated: undecodable
      encodeRecord(
        TOPICS.feedback,
        feedbackMessage({ eventId: "p2", userId: "", itemId: "i2", type: EventType.CLICK }),
      ),
      good("p3", "i3"),
    ]);
    await processor.waitApplied(["p1", "p3"], 3_000);
    assert.deepEqual(
      (await store.get("u9")).history.map((h) => h.itemId),
      ["i1", "i3"],
      "the records after the poison ones are applied",
    );
    await bus.publish(topics.of("feedback"), [good("p4", "i4")]);
    await processor.waitApplied(["p4"], 3_000);
    assert.equal((await store.get("u9")).history.length, 3, "and the consumer keeps going");
    const lines = readFileSync(join(dir, "bus", "dead-letter", "stream-user-state.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { topic: string; offset: string; reason: string; value: string });
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.topic, "feedback");
    assert.match(lines[0]!.offset, /^[0-9]+$/, "the offset to find it by");
    assert.match(lines[0]!.reason, /^undecodable: /);
    assert.deepEqual([...Buffer.from(lines[0]!.value, "base64")], [0x0a, 0x40, 0x61]);
    assert.match(lines[1]!.reason, /without user_id/);
    await processor.stop();
    await bus.close();
  });

  it("joins impressions with feedback into labelled samples after the attribution window", async () => {
    const { bus, topics, processor } = setup(300);
    await processor.start();
    const now = Date.now();
    const impression = create(ImpressionSchema, {
      requestId: "r1",
      userId: "u1",
      timestampMs: BigInt(now),
      items: [
        { itemId: "a", position: 0 },
        { itemId: "b", position: 1 },
        { itemId: "c", position: 2 },
      ],
    });
    // Feedback for "b" arrives before its impression is read (independent topics): held, then applied.
    await bus.publish(topics.of("feedback"), [
      encodeRecord(
        TOPICS.feedback,
        feedbackMessage({ eventId: "f1", userId: "u1", itemId: "b", requestId: "r1", type: EventType.CLICK }),
      ),
    ]);
    await bus.publish(topics.of("impressions"), [encodeRecord(TOPICS.impressions, impression, now)]);
    await bus.publish(topics.of("feedback"), [
      encodeRecord(
        TOPICS.feedback,
        feedbackMessage({ eventId: "f2", userId: "u1", itemId: "c", type: EventType.RATING, value: 5 }),
      ),
      encodeRecord(
        TOPICS.feedback,
        feedbackMessage({ eventId: "f3", userId: "u1", itemId: "a", type: EventType.SKIP }),
      ),
    ]);
    const samplesLog = await bus.log(topics.of("samples"));
    await until(() => samplesLog.endOffset > 0, 5_000);
    const { records } = await samplesLog.read(0);
    const samples = new Map<string, Sample>();
    for (const r of records) {
      const s = decodeRecord(TOPICS.samples, { ...r, topic: "samples", partition: 0, offset: "0" });
      samples.set(s.itemId, s);
    }
    assert.equal(samples.size, 3);
    assert.deepEqual(samples.get("a")!.labels, { click: 0, like: 0 }, "shown, skipped: negative");
    assert.deepEqual(samples.get("b")!.labels, { click: 1, like: 0 });
    assert.deepEqual(samples.get("c")!.labels, { click: 1, like: 1 }, "matched by user and item");
    assert.equal(samples.get("b")!.position, 1);
    assert.equal(samples.get("b")!.requestId, "r1");
    await processor.stop();
    await bus.close();
  });

  it("counts only newly applied engagement into the trending snapshot", async () => {
    const { bus, topics, processor, trendingFile } = setup();
    await processor.start();
    const msgs = [
      feedbackMessage({ eventId: "t1", userId: "u1", itemId: "hot", type: EventType.LIKE }),
      feedbackMessage({ eventId: "t2", userId: "u2", itemId: "hot", type: EventType.CLICK }),
      feedbackMessage({ eventId: "t2", userId: "u2", itemId: "hot", type: EventType.CLICK }),
      feedbackMessage({ eventId: "t3", userId: "u3", itemId: "meh", type: EventType.CLICK }),
      feedbackMessage({ eventId: "t4", userId: "u3", itemId: "bad", type: EventType.DISLIKE }),
    ];
    await bus.publish(
      topics.of("feedback"),
      msgs.map((m) => encodeRecord(TOPICS.feedback, m)),
    );
    await processor.waitApplied(["t1", "t2", "t3", "t4"], 2_000);
    await processor.stop(); // flushes the snapshot
    const snap = JSON.parse(readFileSync(trendingFile, "utf8")) as {
      items: Array<{ itemId: string; score: number }>;
    };
    assert.deepEqual(
      snap.items.map((i) => i.itemId),
      ["hot", "meh"],
    );
    assert.ok(Math.abs(snap.items[0]!.score - 3) < 0.01, `hot scored ${snap.items[0]!.score}`);
    await bus.close();
  });

  it("weights engagement kinds", () => {
    const row = (type: EventType, value = 0) => ({ itemId: "x", timestampMs: 0, type, value });
    const cases: Array<[EventType, number, number]> = [
      [EventType.CLICK, 0, 1],
      [EventType.LIKE, 0, 2],
      [EventType.SHARE, 0, 2],
      [EventType.RATING, 5, 1],
      [EventType.RATING, 2, 0],
      [EventType.SKIP, 0, 0],
      [EventType.DISLIKE, 0, 0],
      [EventType.IMPRESSION, 0, 0],
    ];
    for (const [type, value, weight] of cases)
      assert.equal(trendingWeight(row(type, value)), weight, EventType[type]);
  });
});

describe("trending with events stamped in the future", () => {
  it("counts them at the present: a century ahead neither wins nor turns scores into NaN", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trending-"));
    const sink = new FileTrendingSink(join(dir, "trending.json"), 3_600_000, 10);
    const now = Date.now();
    assert.equal(eventTime({ timestampMs: now + 1e12 }, now), now);
    assert.equal(eventTime({ timestampMs: now - 5 }, now), now - 5);
    await sink.add([
      { itemId: "future", type: EventType.CLICK, timestampMs: now + 100 * 365 * 86_400_000, value: 0 },
      { itemId: "a", type: EventType.CLICK, timestampMs: now, value: 0 },
      { itemId: "a", type: EventType.CLICK, timestampMs: now, value: 0 },
    ]);
    const top = sink.snapshot();
    assert.ok(
      top.every((t) => Number.isFinite(t.score)),
      JSON.stringify(top),
    );
    assert.equal(top[0]!.itemId, "a", "two clicks now beat one 'from the future'");
  });
});

describe("SampleJoiner memory bounds", () => {
  const impression = (requestId: string, userId: string, t: number) =>
    create(ImpressionSchema, {
      requestId,
      userId,
      timestampMs: BigInt(t),
      items: [{ itemId: "a", position: 0 }],
    });

  it("gives up the oldest feedback that waits for an impression beyond maxOrphans, and counts it", async () => {
    const metrics = new Metrics("joiner-orphans");
    const dir = mkdtempSync(join(tmpdir(), "joiner-"));
    const bus = EmbeddedBus.open({ dir, logger });
    const joiner = new SampleJoiner({
      bus,
      samplesTopic: "samples",
      attributionWindowMs: 60_000,
      maxOrphans: 10,
      logger,
      metrics: StreamMetrics.of(metrics),
    });
    const now = Date.now();
    for (let i = 0; i < 25; i++)
      joiner.onFeedback(
        feedbackMessage({
          eventId: `f${i}`,
          userId: `u${i}`,
          itemId: "a",
          type: EventType.CLICK,
          receivedAtMs: BigInt(now),
        }),
        now,
      );
    assert.match(
      await metrics.registry.metrics(),
      /recsys_stream_feedback_events_total\{outcome="orphan_dropped"[^}]*\} 15/,
    );
    await bus.close();
  });

  it("holds at most maxOutbox samples while the bus refuses them: the consumer waits, then goes on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "joiner-"));
    const real = EmbeddedBus.open({ dir, logger });
    let refuse = true;
    const bus = Object.create(real) as typeof real;
    bus.publish = async (topic, records, opts) => {
      if (refuse) throw new Error("bus down");
      return real.publish(topic, records, opts);
    };
    const joiner = new SampleJoiner({
      bus,
      samplesTopic: "samples",
      attributionWindowMs: 10,
      maxOutbox: 3,
      logger,
    });
    const t = Date.now() - 60_000;
    for (let i = 0; i < 5; i++) joiner.onImpression(impression(`r${i}`, `u${i}`, t), t);
    await joiner.tick(Date.now(), 0); // windows closed; the publish fails
    assert.equal(joiner.outboxSize, 5);
    let room = false;
    const waiting = joiner.waitForRoom().then(() => {
      room = true;
    });
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(room, false, "the consumer waits while the outbox is full");
    refuse = false;
    await joiner.tick(Date.now(), 0);
    await waiting;
    assert.equal(joiner.outboxSize, 0);
    await real.close();
  });
});
