import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventType, type HistoryRow } from "@recsys/shared";
import hnswlib from "hnswlib-node";
import { retrieve } from "../channels/sequence.js";
import { encodeHistories, gapBucket, ratingBucket, type SequenceModel } from "./sequence-model.js";

const model = {
  maxSeqLen: 4,
  vocab: new Map([
    ["a", 2],
    ["b", 3],
  ]),
} as unknown as SequenceModel;
const row = (itemId: string, minutes: number, value = 4, type = EventType.RATING): HistoryRow => ({
  itemId,
  timestampMs: minutes * 60_000,
  type,
  value,
});
const ints = (t: { data: ArrayBuffer }) => Array.from(new BigInt64Array(t.data), Number);

describe("sequence model inputs (bucket rules shared with the trainer)", () => {
  it("rating buckets: half stars to 1..10, event types to 11..16", () => {
    assert.deepEqual(
      [0.5, 1, 2.5, 3.5, 5].map((v) => ratingBucket(row("a", 0, v))),
      [1, 2, 5, 7, 10],
    );
    assert.equal(ratingBucket(row("a", 0, 0, EventType.CLICK)), 11);
    assert.equal(ratingBucket(row("a", 0, 0, EventType.DISLIKE)), 16);
  });

  it("gap buckets: first event 1, then 2 + floor(log2(1 + minutes))", () => {
    assert.deepEqual([undefined, 0, 59, 60, 180, 1e12].map(gapBucket), [1, 2, 2, 3, 4, 31]);
  });

  it("left-pads, maps unknown items to OOV and counts them, restarts gaps at the window start", () => {
    const { feeds, oov } = encodeHistories(model, [
      [row("a", 0), row("zzz", 1), row("b", 3)],
      [row("a", 0), row("a", 10), row("b", 20), row("a", 30), row("b", 90)],
    ]);
    assert.equal(oov, 1);
    assert.deepEqual(feeds.item_idx!.dims, [2, 4]);
    assert.deepEqual(ints(feeds.item_idx!), [0, 2, 1, 3, 2, 3, 2, 3]);
    assert.deepEqual(ints(feeds.gap_bucket!), [0, 1, 3, 3, 1, 5, 5, 7]);
    assert.deepEqual(ints(feeds.rating_bucket!), [0, 8, 8, 8, 8, 8, 8, 8]);
  });

  it("hnswlib-node's inner-product distance is 1 - dot (the retrieval score relies on it)", () => {
    const index = new hnswlib.HierarchicalNSW("ip", 2);
    index.initIndex(2);
    index.addPoint([1, 0], 0);
    index.addPoint([0.6, 0.8], 1);
    const { neighbors, distances } = index.searchKnn([0.6, 0.8], 2);
    assert.deepEqual(neighbors, [1, 0]);
    assert.ok(Math.abs(distances[0]! - 0) < 1e-6 && Math.abs(distances[1]! - 0.4) < 1e-6);
  });
});

describe("retrieve (per-interest HNSW search, merged)", () => {
  // 40 items on the unit circle (dim 2), vocab indices 2..41; a real hnswlib index.
  const N = 40;
  const itemIds = ["", "", ...Array.from({ length: N }, (_, i) => `i${i}`)];
  const embeddings = new Float32Array((N + 2) * 2);
  const index = new hnswlib.HierarchicalNSW("ip", 2);
  index.initIndex(N + 2);
  for (let i = 0; i < N; i++) {
    const a = (2 * Math.PI * i) / N;
    embeddings.set([Math.cos(a), Math.sin(a)], (i + 2) * 2);
    index.addPoint([Math.cos(a), Math.sin(a)], i + 2);
  }
  const vocab = new Map(itemIds.map((id, i) => [id, i] as [string, number]).filter(([id]) => id));
  const two = { numInterests: 2, dim: 2, vocab, itemIds, embeddings, index } as unknown as SequenceModel;
  // interests pointing at items 0 and 20 (opposite sides of the circle)
  const interests = new Float32Array([1, 0, -1, 0]);

  it("fills the quota from both interests, never returns history items, best first", () => {
    const out = retrieve(two, interests, ["i0", "i1", "i39"], 10, "kf");
    assert.equal(out.length, 10);
    const ids = out.map((c) => c.itemId);
    for (const seen of ["i0", "i1", "i39"]) assert.ok(!ids.includes(seen), `${seen} is history`);
    assert.ok(ids.includes("i20") && ids.includes("i2"), ids.join());
    assert.equal(new Set(ids).size, 10);
    const scores = out.map((c) => c.score);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
  });

  it("asks for no more than the index holds", () => {
    const out = retrieve(two, interests, [], 1_000, "kf");
    assert.equal(out.length, N);
  });
});
