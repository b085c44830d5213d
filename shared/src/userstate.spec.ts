import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventType } from "./gen/recsys/common/v1/common_pb.js";
import { InMemoryUserStateStore } from "./userstate.js";

const click = (itemId: string, t: number) => ({ itemId, timestampMs: t, type: EventType.CLICK, value: 0 });

describe("InMemoryUserStateStore", () => {
  it("keeps at most maxUsers, dropping the least recently read or written whole", async () => {
    const store = new InMemoryUserStateStore(256, 10_000, 4_096, 3);
    for (const u of ["a", "b", "c"]) await store.append(u, [click(`${u}-item`, 1)]);
    assert.equal((await store.get("a")).known, true); // a is now the most recently used
    await store.append("d", [click("d-item", 2)]);
    assert.equal(store.users, 3);
    assert.equal(store.evictions, 1);
    assert.equal((await store.get("b")).known, false, "b was the least recently used");
    for (const u of ["a", "c", "d"]) assert.equal((await store.get(u)).known, true, u);
    // dropped whole: its applied event ids too, so a replayed event is applied again as new
    await store.appendOnce("e", [{ eventId: "e1", ...click("x", 3) }]);
    await store.appendOnce("a", [{ eventId: "a1", ...click("y", 3) }]);
    for (let i = 0; i < 5; i++) await store.append(`f${i}`, [click("z", 4)]);
    assert.equal(store.users, 3);
    assert.deepEqual(
      (await store.appendOnce("e", [{ eventId: "e1", ...click("x", 3) }])).map((e) => e.eventId),
      ["e1"],
    );
  });

  it("100,000 distinct users through a capped store stay within the cap", async () => {
    const store = new InMemoryUserStateStore(256, 10_000, 4_096, 1_000);
    for (let i = 0; i < 100_000; i++)
      await store.appendOnce(`u${i}`, [{ eventId: `e${i}`, ...click("i", i) }]);
    assert.equal(store.users, 1_000);
    assert.equal(store.evictions, 99_000);
  });
});
