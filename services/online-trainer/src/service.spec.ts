/**
 * The wired service on the embedded bus, as in `npm start`: another process
 * (here: an EmbeddedBus opened by the test, standing in for the gateway)
 * owns the bus directory; the online trainer tails its samples and feedback
 * logs read-only. The Python update is replaced by a stub.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { commonConfigSpec, createLogger, EventType, loadConfig, Metrics } from "@recsys/shared";
import { EmbeddedBus, encodeRecord, TOPICS } from "@recsys/shared/bus";
import { FeedbackSchema, SampleSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import { onlineTrainerConfigSpec } from "./config.js";
import { type OnlineService, startOnlineService } from "./service.js";
import { readState } from "./state.js";
import type { UpdateResult } from "./update.js";

const logger = createLogger("test", "silent");
const T0 = 1_800_000_000_000;

const feedback = (eventId: string, userId: string, itemId: string, atMs: number, type = EventType.CLICK) =>
  encodeRecord(
    TOPICS.feedback,
    create(FeedbackSchema, {
      eventId,
      userId,
      itemId,
      type,
      timestampMs: BigInt(atMs),
      receivedAtMs: BigInt(atMs),
    }),
  );
const sample = (userId: string, itemId: string, atMs: number, click = 1) =>
  encodeRecord(
    TOPICS.samples,
    create(SampleSchema, {
      userId,
      itemId,
      timestampMs: BigInt(atMs),
      requestId: `r-${itemId}`,
      labels: { click, like: 0 },
      position: 0,
    }),
  );

async function until(cond: () => boolean, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), "condition not met in time");
}

describe("online trainer service on the embedded bus", () => {
  it("writes shards with histories from the dataset and the feedback log, and resumes after a restart", async () => {
    const root = mkdtempSync(join(tmpdir(), "online-service-"));
    const dataDir = join(root, "data");
    mkdirSync(dataDir);
    writeFileSync(
      join(dataDir, "interactions.tsv"),
      "user_id\titem_id\ttimestamp\trating\n1\tbase-a\t1000\t4\n1\tbase-b\t2000\t1\n2\tbase-z\t1500\t5\n",
    );
    const busDir = join(root, "bus");
    const cfg = loadConfig(
      { ...commonConfigSpec, ...onlineTrainerConfigSpec },
      {
        RECSYS_DATA_DIR: dataDir,
        RECSYS_MODEL_STORE: join(root, "models"),
        RECSYS_BUS_DIR: busDir,
        RECSYS_ONLINE_DIR: join(root, "online"),
        RECSYS_ONLINE_EVERY_SAMPLES: "3",
        RECSYS_ONLINE_MIN_SAMPLES: "1",
        RECSYS_ONLINE_POLL_MS: "20",
        RECSYS_ONLINE_MODELS: "em3", // one update call per shard
      },
    );
    const gateway = EmbeddedBus.open({ dir: busDir, logger });
    await gateway.publish("samples", [
      sample("1", "s1", T0 + 1_000),
      { key: "1", value: new Uint8Array([0xff, 0xff, 0xff]), timestampMs: T0 }, // not a Sample
      sample("1", "s2", T0 + 3_000, 0),
      sample("2", "s3", T0 + 1_000),
    ]);
    await gateway.publish("feedback", [
      feedback("e1", "1", "fb-1", T0 + 500),
      feedback("e1", "1", "fb-1", T0 + 500), // duplicate delivery
      feedback("e2", "1", "skipped", T0 + 600, EventType.SKIP),
      feedback("e3", "1", "fb-2", T0 + 2_000, EventType.LIKE),
      feedback("e4", "1", "fb-late", T0 + 3_000), // at the time of s2: not before it
    ]);

    const shards: string[][] = [];
    const start = (metrics: Metrics) =>
      startOnlineService({
        cfg,
        logger,
        metrics,
        tickMs: 20,
        update: async (_model, shard): Promise<UpdateResult> => {
          shards.push(readFileSync(shard, "utf8").trim().split("\n"));
          return { decision: "published", reason: "ok", version: `v${shards.length}`, raw: {} };
        },
      });
    const metrics = new Metrics("test");
    let svc: OnlineService = await start(metrics);
    await until(() => shards.length === 1);
    const lines = shards[0]!.map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.user_id, l.item_id]),
      [
        ["1", "s1"],
        ["1", "s2"],
        ["2", "s3"],
      ],
    );
    // [item, time, event type, value]: the dataset's events are ratings with their stars.
    assert.deepEqual(lines[0].history, [
      ["base-a", 1_000_000, EventType.RATING, 4],
      ["base-b", 2_000_000, EventType.RATING, 1],
      ["fb-1", T0 + 500, EventType.CLICK, 0],
    ]);
    assert.deepEqual(lines[1].history, [
      ["base-a", 1_000_000, EventType.RATING, 4],
      ["base-b", 2_000_000, EventType.RATING, 1],
      ["fb-1", T0 + 500, EventType.CLICK, 0],
      ["fb-2", T0 + 2_000, EventType.LIKE, 0],
    ]);
    assert.deepEqual(lines[1].labels, { click: 0, like: 0 });
    assert.deepEqual(lines[2].history, [["base-z", 1_500_000, EventType.RATING, 5]]);
    const text = await metrics.registry.metrics();
    assert.match(text, /recsys_online_bad_records_total\{topic="samples",service="test"\} 1/);
    assert.match(text, /recsys_online_feedback_events_total\{outcome="duplicate",service="test"\} 1/);
    await svc.stop();

    // Restart with more samples: only the new ones are trained on.
    await gateway.publish("samples", [
      sample("2", "s4", T0 + 4_000),
      sample("2", "s5", T0 + 5_000),
      sample("1", "s6", T0 + 6_000),
    ]);
    svc = await start(new Metrics("test"));
    await until(() => shards.length === 2);
    assert.deepEqual(
      shards[1]!.map((l) => JSON.parse(l).item_id),
      ["s4", "s5", "s6"],
    );
    await until(() => readState(join(root, "online", "state.json")).updates === 2);
    await svc.stop();

    // The gateway's bus was wiped: the new log starts over and is read from its start.
    await gateway.close();
    rmSync(busDir, { recursive: true, force: true });
    const fresh = EmbeddedBus.open({ dir: busDir, logger });
    await fresh.publish("samples", [
      sample("1", "n1", T0 + 7_000),
      sample("1", "n2", T0 + 8_000),
      sample("1", "n3", T0 + 9_000),
    ]);
    svc = await start(new Metrics("test"));
    await until(() => shards.length === 3);
    assert.deepEqual(
      shards[2]!.map((l) => JSON.parse(l).item_id),
      ["n1", "n2", "n3"],
    );
    await svc.stop();
    await fresh.close();
  });
});
