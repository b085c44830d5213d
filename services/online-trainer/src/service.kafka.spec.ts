/**
 * The wired service on a real Kafka broker (RECSYS_TEST_KAFKA_BROKERS, set by
 * scripts/test.sh; skipped otherwise): the samples consumer group commits
 * only after an update consumed the samples.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { commonConfigSpec, createLogger, EventType, loadConfig, Metrics } from "@recsys/shared";
import { encodeRecord, KafkaBus, TOPICS, TopicNames } from "@recsys/shared/bus";
import { FeedbackSchema, SampleSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import { onlineTrainerConfigSpec } from "./config.js";
import { startOnlineService } from "./service.js";
import type { UpdateResult } from "./update.js";

const brokers = process.env.RECSYS_TEST_KAFKA_BROKERS;
const logger = createLogger("test", process.env.RECSYS_TEST_LOG_LEVEL ?? "silent");
const T0 = 1_800_000_000_000;

const sample = (userId: string, itemId: string, atMs: number) =>
  encodeRecord(
    TOPICS.samples,
    create(SampleSchema, { userId, itemId, timestampMs: BigInt(atMs), labels: { click: 1, like: 0 } }),
  );

async function until(cond: () => boolean, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cond(), "condition not met in time");
}

describe("online trainer service on Kafka (real broker)", {
  skip: brokers ? false : "RECSYS_TEST_KAFKA_BROKERS not set",
}, () => {
  it("trains each sample once: the group commits after the update, failed updates are retried", {
    timeout: 90_000,
  }, async () => {
    const root = mkdtempSync(join(tmpdir(), "online-kafka-"));
    const dataDir = join(root, "data");
    mkdirSync(dataDir);
    writeFileSync(
      join(dataDir, "interactions.tsv"),
      "user_id\titem_id\ttimestamp\trating\n1\tbase-a\t1000\t4\n",
    );
    const prefix = `test-online-${Date.now()}-`;
    const topics = new TopicNames(prefix);
    const producer = new KafkaBus({ brokers: brokers!.split(","), clientId: "online-spec", logger });
    await producer.ensureTopics(topics.all());
    await producer.publish(topics.of("feedback"), [
      encodeRecord(
        TOPICS.feedback,
        create(FeedbackSchema, {
          eventId: "e1",
          userId: "1",
          itemId: "fb-1",
          type: EventType.LIKE,
          timestampMs: BigInt(T0),
        }),
      ),
    ]);
    await producer.publish(topics.of("samples"), [sample("1", "s1", T0 + 1), sample("1", "s2", T0 + 2)]);
    const cfg = loadConfig(
      { ...commonConfigSpec, ...onlineTrainerConfigSpec },
      {
        RECSYS_DATA_DIR: dataDir,
        RECSYS_KAFKA_BROKERS: brokers,
        RECSYS_BUS_TOPIC_PREFIX: prefix,
        RECSYS_ONLINE_DIR: join(root, "online"),
        RECSYS_ONLINE_EVERY_SAMPLES: "2",
        RECSYS_ONLINE_MIN_SAMPLES: "1",
        RECSYS_ONLINE_MODELS: "em3", // one update call per shard
      },
    );
    const shards: string[][] = [];
    let fail = true;
    const start = () =>
      startOnlineService({
        cfg,
        logger,
        metrics: new Metrics("test"),
        tickMs: 50,
        update: async (_model, shard): Promise<UpdateResult> => {
          shards.push(readFileSync(shard, "utf8").trim().split("\n"));
          if (fail) throw new Error("python failed");
          return { decision: "published", reason: "ok", version: `v${shards.length}`, raw: {} };
        },
      });
    let svc: Awaited<ReturnType<typeof start>> | undefined;
    const stopSvc = async () => {
      const running = svc;
      svc = undefined;
      await running?.stop();
    };
    try {
      svc = await start();
      await until(() => shards.length === 1); // failed: kept, nothing committed
      await stopSvc();

      fail = false;
      svc = await start();
      await producer.publish(topics.of("samples"), [sample("1", "s3", T0 + 3)]);
      await until(() => shards.length === 2);
      const items = shards[1]!.map((l) => JSON.parse(l).item_id);
      assert.deepEqual(items, ["s1", "s2", "s3"]);
      assert.deepEqual(JSON.parse(shards[1]![0]!).history, [
        ["base-a", 1_000_000, EventType.RATING, 4],
        ["fb-1", T0, EventType.LIKE, 0],
      ]);
      await until(() => svc!.trainer.currentState.updates === 1);
      await stopSvc();

      // Committed to the group: without the state file too, a restart reads only what came after.
      rmSync(join(root, "online", "state.json"));
      svc = await start();
      await producer.publish(topics.of("samples"), [sample("1", "s4", T0 + 4), sample("1", "s5", T0 + 5)]);
      await until(() => shards.length === 3);
      assert.deepEqual(
        shards[2]!.map((l) => JSON.parse(l).item_id),
        ["s4", "s5"],
      );
      await stopSvc();
    } finally {
      await stopSvc(); // a failed assertion must not leave consumers keeping the file's process alive
      await producer.close();
    }
  });
});
