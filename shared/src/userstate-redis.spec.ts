/**
 * The Redis user-state store against a real Redis. Runs when
 * RECSYS_TEST_REDIS_URL is set (scripts/test.sh starts one); skipped otherwise.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventType } from "./gen/recsys/common/v1/common_pb.js";
import { createLogger } from "./log.js";
import type { UserEvent } from "./userstate.js";
import { RedisUserStateStore, StaleOnErrorUserStateStore } from "./userstate-redis.js";

const url = process.env.RECSYS_TEST_REDIS_URL;
const logger = createLogger("test", "silent");
const ev = (id: string, itemId: string, t: number): UserEvent => ({
  eventId: id,
  itemId,
  timestampMs: t,
  type: EventType.CLICK,
  value: 0,
});

describe("RedisUserStateStore (real Redis)", { skip: url ? false : "RECSYS_TEST_REDIS_URL not set" }, () => {
  const prefix = `test${Date.now()}:`;

  it("applies each event id once, keeps the sequence bounded, remembers earlier items as seen", async () => {
    const store = await RedisUserStateStore.connect({
      url: url!,
      logger,
      prefix,
      maxSequenceLength: 3,
      timeoutMs: 1_000,
    });
    try {
      assert.deepEqual(await store.get("u"), { known: false, history: [], earlierSeenItemIds: [] });
      const first = await store.appendOnce("u", [ev("e1", "a", 1), ev("e2", "b", 2), ev("e2", "b", 2)]);
      assert.deepEqual(
        first.map((e) => e.eventId),
        ["e1", "e2"],
      );
      const replay = await store.appendOnce("u", [ev("e1", "a", 1), ev("e3", "c", 3), ev("e4", "d", 4)]);
      assert.deepEqual(
        replay.map((e) => e.eventId),
        ["e3", "e4"],
      );
      const state = await store.get("u");
      assert.equal(state.known, true);
      assert.deepEqual(
        state.history.map((h) => h.itemId),
        ["b", "c", "d"],
      );
      assert.deepEqual(state.history[0], { type: EventType.CLICK, timestampMs: 2, value: 0, itemId: "b" });
      assert.deepEqual(state.earlierSeenItemIds, ["a"]);
      assert.equal(await store.size(), 1);
    } finally {
      await store.close();
    }
  });

  it("imports a dataset once, before what the stream already appended", async () => {
    const store = await RedisUserStateStore.connect({
      url: url!,
      logger,
      prefix,
      maxSequenceLength: 10,
      timeoutMs: 1_000,
    });
    try {
      await store.appendOnce("s", [ev("live", "z", 100)]);
      const interactions = [
        { userId: "s", itemId: "x", timestampMs: 1, rating: 4 },
        { userId: "s", itemId: "y", timestampMs: 2, rating: 5 },
      ];
      assert.equal(await store.seedOnce("tag1", interactions), 1);
      assert.equal(await store.seedOnce("tag1", interactions), 0);
      const state = await store.get("s");
      assert.deepEqual(
        state.history.map((h) => h.itemId),
        ["x", "y", "z"],
      );
      assert.equal(state.history[0]!.type, EventType.RATING);
    } finally {
      await store.close();
    }
  });

  it("fails fast when Redis is unreachable, and the stale wrapper serves the last known state", async () => {
    const live = await RedisUserStateStore.connect({ url: url!, logger, prefix, timeoutMs: 1_000 });
    await live.appendOnce("w", [ev("w1", "a", 1)]);
    await live.close();
    const down = await RedisUserStateStore.connect(
      { url: "redis://127.0.0.1:1", logger, prefix, timeoutMs: 50 },
      200,
    );
    const t0 = Date.now();
    await assert.rejects(down.get("w"));
    assert.ok(Date.now() - t0 < 100, `failed after ${Date.now() - t0} ms`);
    await down.close();

    const backing = await RedisUserStateStore.connect({ url: url!, logger, prefix, timeoutMs: 1_000 });
    let fail = false;
    const flaky = {
      kind: "redis",
      get: (u: string, n?: number) => (fail ? Promise.reject(new Error("down")) : backing.get(u, n)),
      append: backing.append.bind(backing),
      appendOnce: backing.appendOnce.bind(backing),
      size: backing.size.bind(backing),
    };
    const stale = new StaleOnErrorUserStateStore(flaky);
    assert.equal((await stale.get("w")).unavailable, undefined);
    fail = true;
    const cached = await stale.get("w");
    assert.equal(cached.unavailable, true);
    assert.deepEqual(
      cached.history.map((h) => h.itemId),
      ["a"],
    );
    await assert.rejects(stale.get("never-read"));
    await backing.close();
  });
});
