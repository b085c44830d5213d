import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SwingCandidateSource } from "./channels/swing.js";
import { RecallPipeline, type RecallRequestView } from "./recall.js";
import { buildSwing, parseSwing, serializeSwing } from "./swing/build.js";
import {
  type Candidate,
  type CandidateSource,
  EventTypeOf,
  type Interaction,
  newCandidate,
} from "./test-support.js";

const source = (id: string, ids: string[], behaviour: "ok" | "throw" | "hang" = "ok"): CandidateSource => ({
  id,
  fetch(): Promise<Candidate[]> | Candidate[] {
    if (behaviour === "throw") throw new Error("boom");
    if (behaviour === "hang") return new Promise(() => {});
    return ids.map((itemId, i) => newCandidate(itemId, { score: 1 - i / ids.length, channels: [id] }));
  },
});

const request = (history: string[], extra: Partial<RecallRequestView> = {}): RecallRequestView => ({
  requestId: "r",
  scene: "",
  query: "",
  deadline: Date.now() + 1_000,
  user: {
    userId: "u",
    known: true,
    blockedItemIds: [],
    earlierSeenItemIds: ["old"],
    history: history.map((itemId, i) => ({ itemId, timestampMs: i, type: EventTypeOf.RATING, value: 4 })),
  },
  excludeItemIds: [],
  maxCandidates: 100,
  quotaOverrides: {},
  ...extra,
});

describe("RecallPipeline", () => {
  it("merges channels, de-duplicates with merged provenance, filters seen and excluded items", async () => {
    const pipeline = new RecallPipeline(
      [
        { source: source("swing", ["a", "b", "seen", "x"]), quota: 10, timeoutMs: 50 },
        { source: source("popular", ["b", "c", "d"]), quota: 10, timeoutMs: 50 },
      ],
      () => [],
    );
    const out = await pipeline.run(request(["seen"], { excludeItemIds: ["x"] }));
    const ids = out.candidates.map((c) => c.itemId);
    assert.deepEqual([...ids].sort(), ["a", "b", "c", "d"]);
    assert.deepEqual(out.candidates.find((c) => c.itemId === "b")!.channels.sort(), ["popular", "swing"]);
    assert.deepEqual(out.degradations, []);
  });

  it("asks a channel for quota + history length, and one that excludes history items for its quota", async () => {
    const asked: Record<string, number> = {};
    const recording = (id: string, excludesHistory: boolean): CandidateSource => ({
      id,
      excludesHistory,
      fetch(_ctx, quota) {
        asked[id] = quota;
        return [];
      },
    });
    const pipeline = new RecallPipeline(
      [
        { source: recording("swing", false), quota: 5, timeoutMs: 50 },
        { source: recording("generative", true), quota: 5, timeoutMs: 50 },
      ],
      () => [],
    );
    await pipeline.run(request(["h1", "h2", "h3"]));
    assert.deepEqual(asked, { swing: 8, generative: 5 });
  });

  it("applies each channel's quota after filtering, and quota overrides", async () => {
    const pipeline = new RecallPipeline(
      [
        { source: source("swing", ["seen", "a", "b", "c"]), quota: 2, timeoutMs: 50 },
        { source: source("popular", ["p1", "p2", "p3"]), quota: 3, timeoutMs: 50 },
      ],
      () => [],
    );
    const out = await pipeline.run(request(["seen"], { quotaOverrides: { popular: 1 } }));
    assert.deepEqual(out.candidates.map((c) => c.itemId).sort(), ["a", "b", "p1"]);
  });

  it("fails open: a throwing and a hanging channel are dropped and flagged", async () => {
    const pipeline = new RecallPipeline(
      [
        { source: source("swing", [], "throw"), quota: 10, timeoutMs: 20 },
        { source: source("slow", [], "hang"), quota: 10, timeoutMs: 20 },
        { source: source("popular", ["p1", "p2"]), quota: 10, timeoutMs: 20 },
      ],
      () => [],
    );
    const started = Date.now();
    const out = await pipeline.run(request([]));
    assert.ok(Date.now() - started < 500);
    assert.deepEqual(
      out.candidates.map((c) => c.itemId),
      ["p1", "p2"],
    );
    assert.deepEqual(out.degradations.sort(), ["recall_channel_failed:slow", "recall_channel_failed:swing"]);
  });

  it("all channels failed -> emergency popular items, flagged", async () => {
    const pipeline = new RecallPipeline(
      [{ source: source("swing", [], "throw"), quota: 10, timeoutMs: 20 }],
      () => [
        newCandidate("e1", { score: 1, channels: ["popular"] }),
        newCandidate("seen", { channels: ["popular"] }),
      ],
    );
    const out = await pipeline.run(request(["seen"]));
    assert.deepEqual(
      out.candidates.map((c) => c.itemId),
      ["e1"],
    );
    assert.ok(out.degradations.includes("recall_all_channels_failed"));
  });
});

describe("Swing", () => {
  // Two taste clusters: users 1-4 watch {A,B,C}, users 5-8 watch {X,Y,Z}; user 9 bridges A and X once.
  const rows: Interaction[] = [];
  let t = 0;
  for (const u of ["1", "2", "3", "4"])
    for (const i of ["A", "B", "C"]) rows.push({ userId: u, itemId: i, timestampMs: t++, rating: 5 });
  for (const u of ["5", "6", "7", "8"])
    for (const i of ["X", "Y", "Z"]) rows.push({ userId: u, itemId: i, timestampMs: t++, rating: 5 });
  rows.push(
    { userId: "9", itemId: "A", timestampMs: t++, rating: 5 },
    { userId: "9", itemId: "X", timestampMs: t++, rating: 5 },
  );
  const neighbours = buildSwing(rows, {
    alpha: 1,
    topK: 10,
    maxUsersPerItem: 100,
    maxItemsPerUser: 100,
    minRating: 3,
  });

  it("scores items of the same cluster as neighbours, and not the other cluster", () => {
    const ofA = neighbours.get("A")!.map((n) => n.itemId);
    assert.deepEqual(ofA.slice(0, 2).sort(), ["B", "C"]);
    assert.ok(!ofA.includes("X"), "one bridging user alone is not a user pair");
  });

  it("serialises and parses losslessly enough to keep the order", () => {
    const back = parseSwing(serializeSwing(neighbours));
    assert.deepEqual(
      back.get("A")!.map((n) => n.itemId),
      neighbours.get("A")!.map((n) => n.itemId),
    );
  });

  it("the channel recalls from recent positive items and names the seed", () => {
    const channel = new SwingCandidateSource(neighbours, "test", 10);
    const out = channel.fetch(request(["Y", "A"]), 10);
    const b = out.find((c) => c.itemId === "B");
    assert.ok(b, "B is recalled from A");
    assert.equal(b.reasonIndex, 1, "the reason points at A in the history");
    assert.equal(out[0]!.score, 1);
  });

  it("an empty history recalls nothing", () => {
    assert.deepEqual(new SwingCandidateSource(neighbours, "test", 10).fetch(request([]), 10), []);
  });
});
