import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ContentTable, ItemCatalog, newCandidate, type StageContext } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { RerankPolicy } from "./policy.js";

// Ten action movies scored highest, five comedies lower, one seen item.
const items = [
  ...Array.from({ length: 10 }, (_, i) => ({
    itemId: `a${i}`,
    title: `Action ${i}`,
    genres: ["Action"],
    year: 2000,
  })),
  ...Array.from({ length: 5 }, (_, i) => ({
    itemId: `c${i}`,
    title: `Comedy ${i}`,
    genres: ["Comedy"],
    year: 2000,
  })),
  { itemId: "seen", title: "Seen", genres: ["Action"], year: 2000 },
];
const catalog = new ItemCatalog(items, []);
const ctx: StageContext = {
  requestId: "r",
  scene: "",
  query: "",
  deadline: Number.POSITIVE_INFINITY,
  user: {
    userId: "u",
    known: true,
    blockedItemIds: ["c4"],
    earlierSeenItemIds: [],
    history: [{ itemId: "seen", timestampMs: 1, type: EventType.RATING, value: 5 }],
  },
};
const candidates = () => [
  newCandidate("seen", { taskScores: { click: 1, like: 1 }, channels: ["swing"], reasonIndex: 0 }),
  ...Array.from({ length: 10 }, (_, i) =>
    newCandidate(`a${i}`, {
      taskScores: { click: 0.9 - i * 0.01, like: 0.5 },
      channels: ["swing"],
      reasonIndex: 0,
    }),
  ),
  ...Array.from({ length: 5 }, (_, i) =>
    newCandidate(`c${i}`, { taskScores: { click: 0.5 - i * 0.01, like: 0.5 }, channels: ["popular"] }),
  ),
];

describe("RerankPolicy", () => {
  it("without diversity, returns fused-score order minus seen/blocked/excluded items", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 1,
    });
    const out = policy.run(ctx, candidates(), 6, ["a0"], {});
    assert.deepEqual(
      out.map((c) => c.itemId),
      ["a1", "a2", "a3", "a4", "a5", "a6"],
    );
  });

  it("MMR and the genre cap bring the other genre into the list", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 0.5,
      mmrPool: 100,
      genreCapFraction: 0.5,
    });
    const out = policy.run(ctx, candidates(), 6, [], {});
    const comedies = out.filter((c) => c.itemId.startsWith("c")).length;
    assert.equal(out.length, 6);
    assert.ok(comedies >= 3, `at most half the list per genre, got ${comedies} comedies`);
    assert.ok(!out.some((c) => c.itemId === "c4"), "blocked item removed");
  });

  it("request weights override the defaults", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 1,
    });
    const cands = [
      newCandidate("a1", { taskScores: { click: 0.9, like: 0.1 } }),
      newCandidate("c1", { taskScores: { click: 0.5, like: 0.9 } }),
    ];
    assert.deepEqual(
      policy.run(ctx, cands, 2, [], { click: 1, like: 2 }).map((c) => c.itemId),
      ["c1", "a1"],
    );
  });

  it("explains each item from its provenance", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 1,
    });
    const out = policy.run(ctx, candidates(), 16, [], {});
    assert.equal(out.find((c) => c.itemId === "a1")!.reason, "because you watched Seen");
    assert.equal(out.find((c) => c.itemId === "c1")!.reason, "trending");
  });

  it("keeps a short list when candidates run out, never pads", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 0.7,
      mmrPool: 100,
      genreCapFraction: 0.4,
    });
    assert.equal(policy.run(ctx, candidates().slice(0, 3), 10, [], {}).length, 2);
  });

  it("fresh slots: new items recalled by `fresh` get places in the list, at its end", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 1,
      freshSlots: 2,
    });
    const input = [
      ...candidates(),
      newCandidate("f1", { taskScores: { click: 0.1 }, channels: ["fresh"], reasonIndex: 0 }),
      newCandidate("f2", { taskScores: { click: 0.05 }, channels: ["fresh"] }),
    ];
    const out = policy.run(ctx, input, 5, [], {});
    assert.deepEqual(
      out.map((c) => c.itemId),
      ["a0", "a1", "a2", "f1", "f2"],
    );
    assert.equal(out[3]!.reason, "new, similar to Seen");
    assert.equal(out[4]!.reason, "new and similar to what you watch");
    const none = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 1,
    });
    assert.ok(!none.run(ctx, input, 5, [], {}).some((c) => c.channels.includes("fresh")));
  });

  it("fresh slots go to the newest fresh items, even when older fresh items score higher", () => {
    const now = Date.now();
    const local = new ItemCatalog(items, []);
    local.upsert(
      { itemId: "old-new", title: "Old new", genres: ["Drama"], year: 2026 },
      now - 20 * 86_400_000,
    );
    local.upsert({ itemId: "brand-new", title: "Brand new", genres: ["Drama"], year: 2026 }, now - 1_000);
    const policy = new RerankPolicy(local, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 1,
      freshSlots: 1,
    });
    const input = [
      ...candidates(),
      newCandidate("old-new", { taskScores: { click: 0.2 }, channels: ["fresh"] }),
      newCandidate("brand-new", { taskScores: { click: 0.01 }, channels: ["fresh"] }),
    ];
    const ids = policy.run(ctx, input, 5, [], {}).map((c) => c.itemId);
    assert.deepEqual(ids, ["a0", "a1", "a2", "a3", "brand-new"]);
  });

  it("with a query, query matches come first, the genre cap is off, and the reason names the query", () => {
    const policy = new RerankPolicy(catalog, {
      defaultWeights: { click: 1 },
      mmrLambda: 1,
      mmrPool: 100,
      genreCapFraction: 0.2,
    });
    const input = candidates().map((c) =>
      c.itemId.startsWith("c") ? { ...c, channels: [...c.channels, "query"] } : c,
    );
    const withQuery = { ...ctx, query: "funny films" };
    const out = policy.run(withQuery, input, 6, [], {});
    assert.deepEqual(
      out.map((c) => c.itemId),
      ["c0", "c1", "c2", "c3", "a0", "a1"],
    );
    assert.equal(out[0]!.reason, 'matches your query "funny films"');
    const noQuery = policy.run(ctx, input, 6, [], {});
    assert.equal(noQuery[0]!.itemId, "a0", "without a query the query channel gets no precedence");
  });

  it("MMR measures similarity with content vectors, and with genre vectors where an item has none", () => {
    const policy = (content?: ContentTable) =>
      new RerankPolicy(
        catalog,
        { defaultWeights: { click: 1 }, mmrLambda: 0.5, mmrPool: 100, genreCapFraction: 1 },
        undefined,
        content,
      );
    // Three action films by score a0 > a1 > a2: a0 and a1 are remakes of one another (same content), a2 is not.
    const input = () => [
      newCandidate("a0", { taskScores: { click: 0.9 } }),
      newCandidate("a1", { taskScores: { click: 0.89 } }),
      newCandidate("a2", { taskScores: { click: 0.88 } }),
    ];
    const content = new ContentTable(3);
    content.upsert("a0", [1, 0, 0], "");
    content.upsert("a1", [1, 0, 0], "");
    content.upsert("a2", [0, 1, 0], "");
    const ids = (out: { itemId: string }[]) => out.map((c) => c.itemId);
    // Genre vectors alone see three equally similar action films: score order.
    assert.deepEqual(ids(policy().run(ctx, input(), 3, [], {})), ["a0", "a1", "a2"]);
    // Content vectors see a1 repeat a0: a2 moves up.
    assert.deepEqual(ids(policy(content).run(ctx, input(), 3, [], {})), ["a0", "a2", "a1"]);
    // Without a content vector, a2 is compared by genre (same as a0's): score order again.
    const partial = new ContentTable(3);
    partial.upsert("a0", [1, 0, 0], "");
    partial.upsert("a1", [1, 0, 0], "");
    assert.deepEqual(ids(policy(partial).run(ctx, input(), 3, [], {})), ["a0", "a1", "a2"]);
  });
});
