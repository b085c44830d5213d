import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Interaction } from "./dataset.js";
import { globalTemporalSplit, perUserTemporalSplit } from "./split.js";

const row = (userId: string, itemId: string, t: number): Interaction => ({
  userId,
  itemId,
  timestampMs: t,
  rating: 4,
});

describe("temporal splits", () => {
  const rows = [
    row("a", "1", 1),
    row("a", "2", 2),
    row("a", "3", 3),
    row("b", "1", 5),
    row("c", "4", 1),
    row("c", "5", 9),
  ];

  it("per-user: each user's last event is the target, everything earlier is history", () => {
    const { train, test } = perUserTemporalSplit(rows, 1, 1);
    assert.deepEqual(
      test.map((t) => [t.userId, t.targets.map((x) => x.itemId)]),
      [
        ["a", ["3"]],
        ["c", ["5"]],
      ],
    );
    // b has too little history to be a test user, so all of b trains.
    assert.ok(train.some((r) => r.userId === "b"));
    for (const t of test) for (const h of t.history) assert.ok(h.timestampMs <= t.targets[0]!.timestampMs);
    assert.ok(!train.some((r) => r.itemId === "3" || r.itemId === "5"));
  });

  it("global: strictly before the cutoff trains", () => {
    const { train, test } = globalTemporalSplit(rows, 3);
    assert.ok(train.every((r) => r.timestampMs < 3));
    assert.ok(test.every((r) => r.timestampMs >= 3));
    assert.equal(train.length + test.length, rows.length);
  });
});
