import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type HistoryRow, ItemCatalog, type StageContext } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { FreshCandidateSource, NewItemSet } from "../channels/fresh.js";
import { normaliseQuery, QueryCandidateSource, type QueryEncoder } from "../channels/query.js";
import { ContentIndex } from "./content-index.js";
import { contentProfile } from "./profile.js";

const DIM = 16;
const DAY = 86_400_000;

/** Deterministic unit vectors: item k of topic t points mostly along axis t. */
function topicVector(topic: number, k: number): Float32Array {
  const v = new Float32Array(DIM);
  v[topic] = 1;
  v[(topic + 1 + (k % 5)) % DIM] = 0.3;
  v[(k * 7) % DIM]! += 0.1;
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function buildIndex(perTopic = 40, topics = 4): ContentIndex {
  const ids: string[] = [];
  const vectors = new Float32Array(perTopic * topics * DIM);
  for (let t = 0; t < topics; t++)
    for (let k = 0; k < perTopic; k++) {
      vectors.set(topicVector(t, k), ids.length * DIM);
      ids.push(`t${t}-${k}`);
    }
  return ContentIndex.of(ids, vectors, DIM, { m: 8, efConstruction: 50, efSearch: 100 });
}

const rating = (itemId: string, value = 5, timestampMs = 1): HistoryRow => ({
  itemId,
  timestampMs,
  type: EventType.RATING,
  value,
});
const ctx = (history: HistoryRow[], query = ""): StageContext => ({
  requestId: "r",
  scene: "",
  query,
  deadline: Number.POSITIVE_INFINITY,
  user: { userId: "u", known: true, blockedItemIds: [], earlierSeenItemIds: [], history },
});

describe("ContentIndex", () => {
  it("answers exactly before the graph is built and the same on the graph after", async () => {
    const index = buildIndex();
    assert.equal(index.graphComplete, false);
    const q = topicVector(2, 3);
    const before = index.search(q, 10);
    await index.buildGraph(1);
    assert.equal(index.graphComplete, true);
    const after = index.search(q, 10);
    // Same scores (several items share a vector, so ties may come in another order).
    const scores = (hits: typeof before) => hits.map((h) => h.score.toFixed(5));
    assert.deepEqual(scores(after), scores(before));
    assert.ok(before.every((h) => index.itemId(h.label).startsWith("t2-")));
  });

  it("builds the graph on a worker thread, then adds what arrived or changed meanwhile", async () => {
    const index = buildIndex();
    const building = index.buildGraphInWorker();
    index.upsert("late", topicVector(11, 0)); // arrives while the worker builds
    const moved = index.upsert("t0-0", topicVector(12, 0)); // changes while the worker builds
    await building;
    assert.equal(index.graphComplete, true);
    assert.equal(index.itemId(index.search(topicVector(11, 0), 1)[0]!.label), "late");
    assert.equal(index.search(topicVector(12, 0), 1)[0]!.label, moved);
    const q = topicVector(1, 2);
    const exact = index.exact(q, 10).map((h) => h.score.toFixed(5));
    assert.deepEqual(
      index.search(q, 10).map((h) => h.score.toFixed(5)),
      exact,
    );
  });

  it("keeps the graph for the next start, and rebuilds a cached graph that does not fit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "content-graph-"));
    const cache = join(dir, "graph.hnsw");
    assert.deepEqual(await buildIndex().buildGraphInWorker(cache), { cached: false });
    assert.ok(existsSync(cache));
    const again = buildIndex();
    assert.deepEqual(await again.buildGraphInWorker(cache), { cached: true });
    const q = topicVector(3, 1);
    assert.deepEqual(
      again.search(q, 5).map((h) => h.score.toFixed(5)),
      again.exact(q, 5).map((h) => h.score.toFixed(5)),
    );
    const bigger = buildIndex(41);
    assert.deepEqual(
      await bigger.buildGraphInWorker(cache),
      { cached: false },
      "another item count: rebuilt",
    );
    writeFileSync(cache, "not a graph");
    assert.deepEqual(await buildIndex(41).buildGraphInWorker(cache), { cached: false }, "damaged: rebuilt");
    assert.deepEqual(await buildIndex(41).buildGraphInWorker(cache), { cached: true });
  });

  it("grows past its capacity and replaces an item's vector in place", async () => {
    const index = new ContentIndex(DIM, 16, { m: 8, efConstruction: 50 });
    await index.buildGraph();
    for (let k = 0; k < 100; k++) index.upsert(`n${k}`, topicVector(k % 3, k));
    assert.equal(index.size, 100);
    assert.equal(index.graphComplete, true, "live items join the graph as they arrive");
    const label = index.upsert("n5", topicVector(9, 0));
    assert.equal(index.size, 100);
    assert.equal(index.search(topicVector(9, 0), 1)[0]!.label, label);
    assert.throws(() => index.upsert("bad", new Float32Array(3)), /3 values, the index 16/);
  });
});

describe("fresh channel", () => {
  const index = buildIndex();
  // Topic 1 is the user's taste; t0-* and t1-0..4 are new.
  const newItems = new NewItemSet(30 * DAY, () => 1_000 * DAY);
  for (let k = 0; k < 5; k++) newItems.addFixed(`t1-${k}`);
  for (let k = 0; k < 5; k++) newItems.addFixed(`t0-${k}`);
  const fresh = new FreshCandidateSource(index, newItems, { seeds: 20 });
  const history = [rating("t1-20"), rating("t1-21"), rating("t3-1", 1), rating("t1-22")];

  it("recalls only new items, nearest to the user's content profile first, with the closest seed as reason", () => {
    const out = fresh.fetch(ctx(history), 6);
    assert.equal(out.length, 6);
    assert.ok(
      out.slice(0, 5).every((c) => c.itemId.startsWith("t1-")),
      out.map((c) => c.itemId).join(),
    );
    assert.ok(out.every((c) => newItems.ids().includes(c.itemId)));
    assert.equal(out[0]!.score, 1);
    assert.ok(out.every((c) => c.channels[0] === "fresh" && c.score >= 0 && c.score <= 1));
    assert.ok([0, 1, 3].includes(out[0]!.reasonIndex), "a positive seed, never the disliked item");
  });

  it("nothing for an empty history or a history without content vectors", () => {
    assert.deepEqual(fresh.fetch(ctx([]), 10), []);
    assert.deepEqual(fresh.fetch(ctx([rating("unknown-item")]), 10), []);
  });

  it("items the catalog created are new for maxAge by wall clock, then age out", () => {
    let now = 1_000 * DAY;
    const set = new NewItemSet(2 * DAY, () => now);
    set.noteCreated("t1-30", now - DAY);
    set.noteCreated("t1-31", now - 3 * DAY);
    set.noteCreated("t1-32", 0);
    assert.deepEqual(set.ids(), ["t1-30"]);
    now += 2 * DAY;
    assert.deepEqual(set.ids(), []);
  });

  it("dataset items are new by the dataset's clock (ItemCatalog.ageMs)", () => {
    const catalog = new ItemCatalog(
      [
        { itemId: "a", title: "A", genres: [], year: undefined },
        { itemId: "b", title: "B", genres: [], year: undefined },
      ],
      [
        { userId: "u", itemId: "a", timestampMs: 100 * DAY, rating: 4 },
        { userId: "u", itemId: "b", timestampMs: 10 * DAY, rating: 4 },
      ],
    );
    catalog.upsert({ itemId: "c", title: "C", genres: [], year: 2026 }, 5_000 * DAY);
    const set = NewItemSet.fromCatalog(catalog, 30 * DAY, () => 5_001 * DAY);
    assert.deepEqual(set.ids().sort(), ["a", "c"]);
  });

  it("searches the graph with a filter when there are many new items", async () => {
    const big = buildIndex();
    await big.buildGraph();
    const all = new NewItemSet(DAY, () => 0);
    for (let t = 0; t < 4; t++) for (let k = 0; k < 40; k++) all.addFixed(`t${t}-${k}`);
    const viaGraph = new FreshCandidateSource(big, all, { seeds: 20, exactMax: 10 });
    const exact = new FreshCandidateSource(big, all, { seeds: 20 });
    const scores = (source: FreshCandidateSource) =>
      source.fetch(ctx(history), 10).map((c) => c.score.toFixed(5));
    assert.deepEqual(scores(viaGraph), scores(exact));
  });
});

describe("query channel", () => {
  const index = buildIndex();
  const calls: string[] = [];
  const encoder: QueryEncoder = {
    dim: DIM,
    async encode(texts) {
      calls.push(...texts);
      // "topic N ..." points at topic N.
      const topic = Number(/topic (\d+)/.exec(texts[0]!)?.[1] ?? 0);
      return { vectors: topicVector(topic, 0) };
    },
  };
  const query = new QueryCandidateSource(index, () => encoder, { personalisationWeight: 0.3, seeds: 20 });

  it("recalls items matching the query, nothing without one", async () => {
    assert.deepEqual(await query.fetch(ctx([], "   "), 10), []);
    const out = await query.fetch(ctx([], "Topic 2 films"), 10);
    assert.equal(out.length, 10);
    assert.ok(out.every((c) => c.itemId.startsWith("t2-") && c.channels[0] === "query"));
    assert.equal(out[0]!.score, 1);
  });

  it("blends in the user's profile and leaves out their history", async () => {
    const history = [rating("t2-1"), rating("t3-5"), rating("t3-6")];
    const plain = await new QueryCandidateSource(index, () => encoder, {
      personalisationWeight: 0,
      seeds: 20,
    }).fetch(ctx(history, "topic 2"), 40);
    const blended = await query.fetch(ctx(history, "topic 2"), 40);
    assert.ok(!blended.some((c) => c.itemId === "t2-1"), "history items are not recalled");
    const rankOf = (list: { itemId: string }[], id: string) => list.findIndex((c) => c.itemId === id);
    // t2-k whose secondary axis is topic 3 (k % 5 == 0) moves up for a user who likes topic 3.
    assert.ok(
      rankOf(blended, "t2-5") < rankOf(plain, "t2-5"),
      `${rankOf(blended, "t2-5")} vs ${rankOf(plain, "t2-5")}`,
    );
  });

  it("encodes a query once (LRU cache, whitespace and case do not matter)", async () => {
    calls.length = 0;
    await query.fetch(ctx([], "topic 1 please"), 5);
    await query.fetch(ctx([], "  TOPIC 1   please "), 5);
    assert.deepEqual(calls, ["topic 1 please"]);
    assert.equal(normaliseQuery("  Space \t Adventure\n"), "space adventure");
  });

  it("keeps only items that match: an absolute and a relative similarity floor", async () => {
    const strict = new QueryCandidateSource(index, () => encoder, {
      personalisationWeight: 0,
      seeds: 20,
      relativeSimilarity: 0.99,
    });
    const out = await strict.fetch(ctx([], "topic 1"), 100);
    assert.ok(out.length > 0 && out.length < 40, `${out.length} matches`);
    const none = new QueryCandidateSource(index, () => encoder, {
      personalisationWeight: 0,
      seeds: 20,
      minSimilarity: 1.01,
    });
    assert.deepEqual(await none.fetch(ctx([], "topic 1"), 100), []);
  });

  it("fails (and the pipeline fails it open) while the encoder is not loaded", async () => {
    const none = new QueryCandidateSource(index, () => undefined, { personalisationWeight: 0.3, seeds: 20 });
    await assert.rejects(none.fetch(ctx([], "topic 9"), 5), /not loaded/);
  });
});

describe("contentProfile", () => {
  it("uses positive recent items only, most recent weighing most", () => {
    const index = buildIndex();
    const p = contentProfile(index, [rating("t0-1"), rating("t3-2", 1), rating("t1-1")], 20)!;
    assert.deepEqual(
      p.seeds.map((s) => s.pos),
      [2, 0],
    );
    assert.ok(index.dot(p.vector, index.labelOf("t1-1")!) > index.dot(p.vector, index.labelOf("t0-1")!));
    assert.equal(contentProfile(index, [rating("t0-1", 2)], 20), undefined);
  });
});
