import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventType } from "@recsys/shared";
import { UserHistories } from "./history.js";

const fb = (eventId: string, itemId: string, timestampMs: number, type = EventType.CLICK, userId = "u1") => ({
  eventId,
  userId,
  itemId,
  type,
  timestampMs,
});

describe("UserHistories", () => {
  it("joins the dataset's events and feedback in time order, strictly before the sample's time", () => {
    const h = new UserHistories();
    h.addBase([
      { userId: "u1", itemId: "a", timestampMs: 1_000, rating: 4 },
      { userId: "u1", itemId: "b", timestampMs: 2_000, rating: 2 },
      { userId: "u2", itemId: "z", timestampMs: 1_500, rating: 5 },
    ]);
    assert.equal(h.addFeedback(fb("e1", "c", 3_000)), "applied");
    assert.equal(h.addFeedback(fb("e2", "early", 1_500)), "applied"); // read late, placed by its time
    // Dataset events are ratings with their stars; feedback keeps its type and value.
    assert.deepEqual(h.historyBefore("u1", 3_000, 100), [
      ["a", 1_000, EventType.RATING, 4],
      ["early", 1_500, EventType.CLICK, 0],
      ["b", 2_000, EventType.RATING, 2],
    ]);
    assert.deepEqual(h.historyBefore("u1", 3_001, 100).at(-1), ["c", 3_000, EventType.CLICK, 0]);
    assert.deepEqual(h.historyBefore("u1", 1_000, 100), []); // an event at the sample's time is not before it
    assert.deepEqual(h.historyBefore("u2", 10_000, 100), [["z", 1_500, EventType.RATING, 5]]);
    assert.equal(h.addFeedback({ ...fb("e3", "w", 4_000, EventType.WATCH), value: 1_200 }), "applied");
    assert.deepEqual(h.historyBefore("u1", 5_000, 100).at(-1), ["w", 4_000, EventType.WATCH, 1_200]);
    assert.deepEqual(h.historyBefore("nobody", 10_000, 100), []);
  });

  it("leaves impressions, skips, dislikes and untyped events out", () => {
    const h = new UserHistories();
    assert.equal(h.addFeedback(fb("i", "imp", 1, EventType.IMPRESSION)), "ignored");
    assert.equal(h.addFeedback(fb("s", "skip", 2, EventType.SKIP)), "ignored");
    assert.equal(h.addFeedback(fb("d", "dis", 3, EventType.DISLIKE)), "ignored");
    assert.equal(h.addFeedback(fb("x", "none", 4, EventType.UNSPECIFIED)), "ignored");
    for (const [id, type] of [
      ["c", EventType.CLICK],
      ["l", EventType.LIKE],
      ["r", EventType.RATING],
      ["w", EventType.WATCH],
      ["sh", EventType.SHARE],
    ] as const)
      assert.equal(h.addFeedback(fb(id, `item-${id}`, 10, type)), "applied");
    assert.deepEqual(
      h.historyBefore("u1", 100, 100).map(([item]) => item),
      ["item-c", "item-l", "item-r", "item-w", "item-sh"],
    );
  });

  it("applies a feedback event once per event id", () => {
    const h = new UserHistories();
    assert.equal(h.addFeedback(fb("e1", "a", 1_000)), "applied");
    assert.equal(h.addFeedback(fb("e1", "a", 1_000)), "duplicate");
    assert.equal(h.addFeedback(fb("e1", "other", 5, EventType.LIKE, "u2")), "duplicate"); // the id decides
    assert.equal(h.addFeedback(fb("e2", "a", 1_000)), "applied"); // same item and time, another event
    assert.deepEqual(h.historyBefore("u1", 2_000, 100), [
      ["a", 1_000, EventType.CLICK, 0],
      ["a", 1_000, EventType.CLICK, 0],
    ]);
    assert.equal(h.size, 2);
  });

  it("returns the newest `max` events before the time, oldest first", () => {
    const h = new UserHistories();
    h.addBase(
      Array.from({ length: 250 }, (_, i) => ({ userId: "u1", itemId: `i${i}`, timestampMs: i, rating: 4 })),
    );
    const hist = h.historyBefore("u1", 200, 100);
    assert.equal(hist.length, 100);
    assert.deepEqual(hist[0], ["i100", 100, EventType.RATING, 4]);
    assert.deepEqual(hist.at(-1), ["i199", 199, EventType.RATING, 4]);
    assert.equal(h.historyBefore("u1", 50, 100).length, 50);
    assert.equal(h.historyBefore("u1", 1_000, 100).at(-1)?.[0], "i249");
  });
});
