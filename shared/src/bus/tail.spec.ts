import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ItemCatalog } from "../catalog.js";
import { loadConfig } from "../config.js";
import { ContentTable } from "../encoder/content-table.js";
import { ItemUpdateSchema } from "../gen/recsys/events/v1/events_pb.js";
import { createLogger } from "../log.js";
import { Metrics } from "../metrics.js";
import { openBus } from "./config.js";
import { EmbeddedBus, topicDir } from "./embedded.js";
import {
  catalogBusDir,
  followItemsIntoCatalog,
  followItemUpdates,
  itemFeedConfigSpec,
  itemRecordOf,
} from "./items.js";
import { EmbeddedLog } from "./log.js";
import { EmbeddedLogTail } from "./tail.js";
import { encodeRecord, TOPICS } from "./topics.js";

const logger = createLogger("test", "error");
const record = (key: string, size = 10) => ({ key, value: new Uint8Array(size).fill(7), timestampMs: 1 });

describe("EmbeddedLogTail (read-only, another process's log)", () => {
  it("reads what the owner appended, from any offset, across segments", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tail-"));
    const log = await EmbeddedLog.open(dir, { segmentBytes: 200 });
    for (let k = 0; k < 20; k++) await log.append([record(`k${k}`, 30)]);
    assert.ok(readdirSync(dir).length > 2, "several segments");
    const tail = new EmbeddedLogTail(dir);
    const keys: string[] = [];
    let offset = 0;
    for (;;) {
      const read = await tail.read(offset, 100);
      keys.push(...read.records.map((r) => r.key));
      offset = read.next;
      if (read.atEnd) break;
    }
    assert.deepEqual(
      keys,
      Array.from({ length: 20 }, (_, k) => `k${k}`),
    );
    assert.equal(offset, log.endOffset);
    await log.append([record("late")]);
    const more = await tail.read(offset);
    assert.deepEqual(
      more.records.map((r) => r.key),
      ["late"],
    );
    await log.close();
  });

  it("stops before a frame that is still being written, and reads it once whole", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tail-"));
    const log = await EmbeddedLog.open(dir);
    await log.append([record("a")]);
    const end = log.endOffset;
    await log.close();
    // Half a frame: a length that promises more bytes than are there.
    const segment = join(dir, readdirSync(dir)[0]!);
    const torn = Buffer.alloc(12);
    torn.writeUInt32LE(40, 0);
    appendFileSync(segment, torn);
    const tail = new EmbeddedLogTail(dir);
    const read = await tail.read(0);
    assert.deepEqual(
      read.records.map((r) => r.key),
      ["a"],
    );
    assert.equal(read.next, end);
    assert.equal(read.atEnd, false);
    assert.deepEqual((await tail.read(end)).records, []);
  });

  it("skips what the owner's retention deleted, and says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tail-"));
    const log = await EmbeddedLog.open(dir, { segmentBytes: 100, retentionBytes: 150 });
    for (let k = 0; k < 10; k++) await log.append([record(`k${k}`, 40)]);
    const tail = new EmbeddedLogTail(dir);
    const read = await tail.read(0);
    assert.ok(read.skippedBytes > 0);
    assert.equal(read.records[0]!.offset, log.startOffset);
    await log.close();
  });

  it("a missing directory is an empty log (the owner has not started yet)", async () => {
    const read = await new EmbeddedLogTail(join(tmpdir(), "no-such-log-dir-x")).read(0);
    assert.deepEqual(read, { records: [], next: 0, atEnd: true, skippedBytes: 0 });
  });
});

describe("followItemUpdates on the embedded bus", () => {
  it("replays the catalog's items log, then follows it live, without opening the catalog's bus", async () => {
    const busDir = mkdtempSync(join(tmpdir(), "items-feed-"));
    const cfg = loadConfig(itemFeedConfigSpec, { RECSYS_BUS_DIR: busDir, RECSYS_ITEMS_POLL_MS: "20" });
    // The catalog process owns <bus>/catalog (here: the same process, a separate directory and lock).
    const owner = EmbeddedBus.open({ dir: catalogBusDir(cfg), logger });
    const topic = "items";
    const update = (itemId: string, createdAtMs: number) =>
      encodeRecord(
        TOPICS.items,
        create(ItemUpdateSchema, {
          item: {
            itemId,
            title: `T ${itemId}`,
            genres: ["Drama"],
            year: 2026,
            createdAtMs: BigInt(createdAtMs),
          },
          contentVector: [1, 0, 0],
          encoder: "e@1;fusion=text",
        }),
      );
    await owner.publish(topic, [
      update("a", 5),
      { key: "x", value: new Uint8Array([0x0a, 0x40, 0x61]), timestampMs: 1 }, // poison: undecodable
      update("b", 6),
    ]);
    const seen: string[] = [];
    const feed = await followItemUpdates({
      service: "test",
      cfg,
      logger,
      handle(updates) {
        for (const u of updates) {
          const { record: item, createdAtMs } = itemRecordOf(u);
          seen.push(`${item.itemId}:${createdAtMs}:${item.year}`);
        }
      },
    });
    assert.equal(feed.source, topicDir(catalogBusDir(cfg), topic));
    assert.equal(await feed.waitCaughtUp(5_000), true);
    assert.deepEqual(seen, ["a:5:2026", "b:6:2026"], "the poison record is skipped, the feed goes on");
    const dead = readFileSync(join(busDir, "dead-letter", "test-items.jsonl"), "utf8")
      .trim()
      .split("\n");
    assert.equal(dead.length, 1);
    assert.match((JSON.parse(dead[0]!) as { reason: string }).reason, /^undecodable: /);
    await owner.publish(topic, [update("a", 7)]);
    for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen.at(-1), "a:7:2026");
    await feed.stop();
    await owner.close();
  });
});

describe("followItemsIntoCatalog on the embedded bus", () => {
  it("fills the catalogue and the content table; vectors of another encoder or size are skipped", async () => {
    const busDir = mkdtempSync(join(tmpdir(), "items-catalog-"));
    const cfg = loadConfig(itemFeedConfigSpec, { RECSYS_BUS_DIR: busDir, RECSYS_ITEMS_POLL_MS: "20" });
    const owner = EmbeddedBus.open({ dir: catalogBusDir(cfg), logger });
    const update = (itemId: string, contentVector: number[], encoder: string) =>
      encodeRecord(
        TOPICS.items,
        create(ItemUpdateSchema, {
          item: { itemId, title: itemId, genres: ["Drama"] },
          contentVector,
          encoder,
        }),
      );
    await owner.publish("items", [
      update("same-encoder", [0, 1, 0], "enc@abc1;fusion=text"),
      update("other-encoder", [0, 1, 0], "enc@ffff;fusion=text"),
      update("other-size", [0, 1], "enc@abc1"),
      update("no-vector", [], ""),
    ]);
    const catalog = new ItemCatalog([], []);
    const content = new ContentTable(3, "v1", "abc123");
    const feed = await followItemsIntoCatalog({ service: "test", cfg, logger, catalog, content });
    assert.equal(await feed.waitCaughtUp(5_000), true);
    assert.deepEqual([...catalog.items.keys()], ["same-encoder", "other-encoder", "other-size", "no-vector"]);
    assert.deepEqual(Array.from(content.get("same-encoder") ?? []), [0, 1, 0]);
    assert.equal(content.size, 1);
    assert.equal(content.skipped, 2);
    await feed.stop();
    await owner.close();
  });
});

describe("followItemUpdates on Kafka (real broker)", {
  skip: process.env.RECSYS_TEST_KAFKA_BROKERS ? false : "RECSYS_TEST_KAFKA_BROKERS not set",
}, () => {
  it("replays the items topic from the beginning under a group of its own, then follows it", async () => {
    const prefix = `test-items-${Date.now()}-`;
    const cfg = loadConfig(itemFeedConfigSpec, {
      RECSYS_KAFKA_BROKERS: process.env.RECSYS_TEST_KAFKA_BROKERS,
      RECSYS_BUS_TOPIC_PREFIX: prefix,
      RECSYS_KAFKA_PARTITIONS: "2",
    });
    const metrics = new Metrics("test");
    const { bus } = await openBus("catalog-test", cfg, logger, metrics);
    const update = (itemId: string) =>
      encodeRecord(
        TOPICS.items,
        create(ItemUpdateSchema, { item: { itemId, title: itemId }, contentVector: [1] }),
      );
    await bus.publish(`${prefix}items`, [update("a"), update("b")]);
    const seen: string[] = [];
    const feed = await followItemUpdates({
      service: "test",
      cfg,
      logger,
      metrics,
      handle(updates) {
        seen.push(...updates.map((u) => u.item!.itemId));
      },
    });
    try {
      assert.equal(feed.source, "kafka");
      assert.equal(await feed.waitCaughtUp(30_000), true);
      assert.deepEqual(seen.sort(), ["a", "b"]);
      await bus.publish(`${prefix}items`, [update("c")]);
      for (let i = 0; i < 150 && !seen.includes("c"); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(seen.includes("c"));
    } finally {
      await feed.stop();
      await bus.close();
      await metrics.close();
    }
  });
});
