import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newCandidate } from "../funnel/types.js";
import { EventType } from "../gen/recsys/common/v1/common_pb.js";
import {
  duplicateItemsFilter,
  runFilters,
  type StageContext,
  seenItemsFilter,
  withTimeout,
} from "./index.js";

const ctx: StageContext = {
  requestId: "r",
  scene: "",
  query: "",
  deadline: Number.POSITIVE_INFINITY,
  user: {
    userId: "u",
    known: true,
    blockedItemIds: [],
    earlierSeenItemIds: ["old"],
    history: [{ itemId: "seen", timestampMs: 1, type: EventType.RATING, value: 5 }],
  },
};

describe("stage primitives", () => {
  it("a filter reports what it removed", () => {
    const { kept, removed } = seenItemsFilter.apply(ctx, [newCandidate("seen"), newCandidate("new")]);
    assert.deepEqual(
      kept.map((c) => c.itemId),
      ["new"],
    );
    assert.deepEqual(
      removed.map((c) => c.itemId),
      ["seen"],
    );
  });

  it("de-duplication keeps the first occurrence and merges provenance", () => {
    const kept = runFilters([duplicateItemsFilter], ctx, [
      newCandidate("a", { channels: ["swing"], recallScore: 0.2 }),
      newCandidate("b", { channels: ["popular"] }),
      newCandidate("a", { channels: ["popular"], recallScore: 0.9, reasonIndex: 0 }),
    ]);
    assert.equal(kept.length, 2);
    assert.deepEqual(kept[0]!.channels, ["swing", "popular"]);
    assert.equal(kept[0]!.recallScore, 0.9);
    assert.equal(kept[0]!.reasonIndex, 0);
  });

  it("runFilters counts removals per filter", () => {
    const counts: Record<string, number> = {};
    runFilters(
      [duplicateItemsFilter, seenItemsFilter],
      ctx,
      [newCandidate("seen"), newCandidate("x"), newCandidate("x")],
      (id, n) => {
        counts[id] = n;
      },
    );
    assert.deepEqual(counts, { duplicate_items: 1, seen_items: 1 });
  });

  it("withTimeout rejects a slow promise and passes a fast one", async () => {
    await assert.rejects(
      withTimeout(new Promise((r) => setTimeout(r, 200)), 10, () => new Error("slow")),
      /slow/,
    );
    assert.equal(await withTimeout(Promise.resolve(7), 10, () => new Error("slow")), 7);
  });
});
