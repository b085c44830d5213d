import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EventType } from "@recsys/shared";
import { UserHistories } from "./history.js";
import { buildShard, pruneShards, shardName, writeShard } from "./shard.js";

describe("shards", () => {
  const histories = new UserHistories();
  histories.addBase([
    { userId: "u1", itemId: "a", timestampMs: 1_000, rating: 4 },
    { userId: "u1", itemId: "b", timestampMs: 5_000, rating: 1 },
  ]);
  histories.addFeedback({
    eventId: "e1",
    userId: "u1",
    itemId: "c",
    type: EventType.CLICK,
    timestampMs: 3_000,
  });
  histories.addFeedback({
    eventId: "e2",
    userId: "u1",
    itemId: "d",
    type: EventType.SKIP,
    timestampMs: 3_500,
  });
  histories.addFeedback({
    eventId: "e1",
    userId: "u1",
    itemId: "c",
    type: EventType.CLICK,
    timestampMs: 3_000,
  });

  it("writes one line per sample with the contract's fields and the history before it", () => {
    const lines = buildShard(
      [
        { userId: "u1", itemId: "x", timestampMs: 4_000, labels: { click: 1 } },
        { userId: "u1", itemId: "y", timestampMs: 1_000, labels: { click: 0, like: 0 } },
        { userId: "new", itemId: "z", timestampMs: 9_000, labels: { like: 1, click: 1, watch: 1 } },
      ],
      histories,
      100,
    );
    assert.deepEqual(lines[0], {
      user_id: "u1",
      item_id: "x",
      timestamp_ms: 4_000,
      labels: { click: 1, like: 0 },
      history: [
        ["a", 1_000, EventType.RATING, 4],
        ["c", 3_000, EventType.CLICK, 0],
      ],
    });
    assert.deepEqual(lines[1]!.history, []);
    assert.deepEqual(lines[2]!.labels, { click: 1, like: 1, watch: 1 });
    assert.deepEqual(lines[2]!.history, []);

    const dir = mkdtempSync(join(tmpdir(), "shard-"));
    const path = writeShard(dir, shardName(123, 1), lines);
    const text = readFileSync(path, "utf8");
    assert.equal(text.split("\n").length, 4); // three lines and the final newline
    assert.equal(
      text.split("\n")[0],
      '{"user_id":"u1","item_id":"x","timestamp_ms":4000,"labels":{"click":1,"like":0},"history":[["a",1000,4,4],["c",3000,2,0]]}',
    );
  });

  it("bounds the history to the newest events", () => {
    const lines = buildShard([{ userId: "u1", itemId: "x", timestampMs: 10_000, labels: {} }], histories, 2);
    assert.deepEqual(lines[0]!.history, [
      ["c", 3_000, EventType.CLICK, 0],
      ["b", 5_000, EventType.RATING, 1],
    ]);
  });

  it("keeps the newest shards only", () => {
    const dir = mkdtempSync(join(tmpdir(), "shard-prune-"));
    for (let i = 1; i <= 7; i++) writeShard(dir, shardName(1_000 * i, i), []);
    writeFileSync(join(dir, "state.json"), "{}");
    writeFileSync(join(dir, `${shardName(99, 99)}.tmp`), "");
    assert.equal(pruneShards(dir, 3).length, 5);
    assert.deepEqual(readdirSync(dir).sort(), [
      shardName(5_000, 5),
      shardName(6_000, 6),
      shardName(7_000, 7),
      "state.json",
    ]);
  });
});
