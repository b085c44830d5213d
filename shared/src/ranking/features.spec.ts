import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ItemCatalog } from "../catalog.js";
import { ContentTable } from "../encoder/content-table.js";
import { EventType } from "../gen/recsys/common/v1/common_pb.js";
import type { TensorData } from "../onnx/pool.js";
import {
  buildRankingFeeds,
  type FeatureSpace,
  ItemFeatureTable,
  rankingHistory,
  yearBucket,
} from "./features.js";
import { EM3_SPEC, PRERANK_SPEC, type RankingModelSpec } from "./model.js";

/** A model that takes every per-item input itself (no item tower): the builder's whole contract. */
const FULL_SPEC: RankingModelSpec = {
  model: "full",
  inputs: [
    "user_idx",
    "hist_item_idx",
    "hist_genres",
    "hist_year",
    "hist_content",
    "cand_item_idx",
    "cand_genres",
    "cand_year",
    "cand_content",
    "cand_has_content",
    "cand_recall",
  ],
  outputs: [],
  tasks: [],
};

const C = 4;
const space: FeatureSpace = {
  maxHistLen: 4,
  maxGenres: 2,
  contentDim: C,
  yearMin: 1900,
  yearMax: 2030,
  itemVocab: new Map([
    ["a", 2],
    ["b", 3],
    ["c", 4],
  ]),
  genreVocab: new Map([
    ["Action", 1],
    ["Comedy", 2],
    ["Drama", 3],
  ]),
  recallFeatures: ["recall_score", "channel:kuaiformer", "channel:swing"],
};
const userVocab = new Map([["u1", 2]]);
const catalog = () =>
  new ItemCatalog(
    [
      { itemId: "a", title: "A", genres: ["Action", "Comedy", "Drama"], year: 1995 },
      { itemId: "b", title: "B", genres: ["Comedy"], year: 1850 },
      { itemId: "c", title: "C", genres: [], year: undefined },
      { itemId: "cold", title: "Cold", genres: ["Drama", "Unknown genre"], year: 2040 },
    ],
    [],
  );
const contentOf = (...ids: string[]) => {
  const t = new ContentTable(C);
  for (const [k, id] of ids.entries()) t.upsert(id, [k + 1, 0, 0, 0], "");
  return t;
};
const ev = (itemId: string, type: EventType, ts: number) => ({ itemId, timestampMs: ts, type, value: 4 });
const user = (history: ReturnType<typeof ev>[], userId = "u1") => ({
  userId,
  known: true,
  blockedItemIds: [],
  earlierSeenItemIds: [],
  history,
});
/** Candidates as recall hands them over (found by kuaiformer, score 0.5). */
const cands = (...ids: string[]) =>
  ids.map((itemId) => ({ itemId, channels: ["kuaiformer"], recallScore: 0.5 }));
/** int64 tensor values as numbers. */
const ints = (t: TensorData | undefined) => Array.from(new BigInt64Array(t!.data), Number);
const floats = (t: TensorData | undefined) => Array.from(new Float32Array(t!.data));

describe("ranking features", () => {
  it("history rule: events other than IMPRESSION, SKIP and DISLIKE, the last L, oldest first", () => {
    const history = [
      ev("h1", EventType.RATING, 1),
      ev("h2", EventType.IMPRESSION, 2),
      ev("h3", EventType.CLICK, 3),
      ev("h4", EventType.SKIP, 4),
      ev("h5", EventType.LIKE, 5),
      ev("h6", EventType.DISLIKE, 6),
      ev("h7", EventType.WATCH, 7),
      ev("h8", EventType.RATING, 8),
    ];
    assert.deepEqual(rankingHistory(history, 3), ["h5", "h7", "h8"]);
    assert.deepEqual(rankingHistory(history, 10), ["h1", "h3", "h5", "h7", "h8"]);
    assert.deepEqual(rankingHistory([], 3), []);
  });

  it("year bucket: 0 unknown, else clamp(year) - year_min + 1", () => {
    assert.equal(yearBucket(undefined, 1900, 2030), 0);
    assert.equal(yearBucket(1900, 1900, 2030), 1);
    assert.equal(yearBucket(1995, 1900, 2030), 96);
    assert.equal(yearBucket(1850, 1900, 2030), 1);
    assert.equal(yearBucket(2040, 1900, 2030), 131);
  });

  it("feeds: history LEFT-padded with 0, OOV index 1, genres 0-padded, content and its flag", () => {
    const features = new ItemFeatureTable(space, catalog(), contentOf("a", "cold"));
    const history = [
      ev("b", EventType.RATING, 1),
      ev("x", EventType.SKIP, 2),
      ev("cold", EventType.CLICK, 3),
    ];
    const built = buildRankingFeeds(FULL_SPEC, space, userVocab, features, user(history), [
      { itemId: "a", channels: ["swing", "kuaiformer"], recallScore: 0.9 },
      { itemId: "cold", channels: ["fresh"], recallScore: 0.25 },
      { itemId: "never-heard-of", channels: [], recallScore: 0 },
    ]);
    const f = built.feeds;
    assert.deepEqual(Object.keys(f).sort(), [...FULL_SPEC.inputs].sort());
    assert.deepEqual(ints(f.user_idx), [2]);
    assert.deepEqual(f.hist_item_idx!.dims, [1, 4]);
    // b then cold (the skip is not history), left-padded: [0, 0, b, cold(OOV)]
    assert.deepEqual(ints(f.hist_item_idx), [0, 0, 3, 1]);
    assert.deepEqual(ints(f.hist_genres), [0, 0, 0, 0, 2, 0, 3, 0]);
    assert.deepEqual(ints(f.hist_year), [0, 0, 1, 131]);
    assert.deepEqual(floats(f.hist_content), [...Array(12).fill(0), 2, 0, 0, 0]);
    assert.equal(built.oovHistory, 1);
    assert.equal(built.historyLength, 2);

    assert.deepEqual(f.cand_item_idx!.dims, [3]);
    assert.deepEqual(ints(f.cand_item_idx), [2, 1, 1]);
    assert.deepEqual(f.cand_genres!.dims, [3, 2]);
    assert.deepEqual(ints(f.cand_genres), [1, 2, 3, 0, 0, 0]); // a's first two genres; cold's known one
    assert.deepEqual(ints(f.cand_year), [96, 131, 0]);
    assert.deepEqual(f.cand_content!.dims, [3, C]);
    assert.deepEqual(floats(f.cand_content), [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(floats(f.cand_has_content), [1, 1, 0]);
    // recall's view, in manifest.recall_features order: score, kuaiformer, swing (fresh is not a column)
    assert.deepEqual(f.cand_recall!.dims, [3, 3]);
    assert.deepEqual(floats(f.cand_recall), [0.8999999761581421, 1, 1, 0.25, 0, 0, 0, 0, 0]);
    assert.equal(built.oovCandidates, 2);
  });

  it("an unknown user gets index 1; an empty history is all padding", () => {
    const features = new ItemFeatureTable(space, catalog(), contentOf());
    const f = buildRankingFeeds(
      FULL_SPEC,
      space,
      userVocab,
      features,
      user([], "stranger"),
      cands("b"),
    ).feeds;
    assert.deepEqual(ints(f.user_idx), [1]);
    assert.deepEqual(ints(f.hist_item_idx), [0, 0, 0, 0]);
    assert.deepEqual(floats(f.cand_has_content), [0]);
  });

  it("prerank feeds: only the prerank inputs; the history window keeps its last L items", () => {
    const features = new ItemFeatureTable(space, catalog(), contentOf());
    const history = ["a", "b", "c", "a", "b"].map((id, i) => ev(id, EventType.RATING, i));
    const itemVectors = { data: new Float32Array([0.5, -1, 2]), dim: 3, oov: 0 };
    const f = buildRankingFeeds(PRERANK_SPEC, space, userVocab, features, user(history), cands("c"), {
      itemVectors,
    }).feeds;
    assert.deepEqual(Object.keys(f).sort(), [...PRERANK_SPEC.inputs].sort());
    assert.deepEqual(ints(f.hist_item_idx), [3, 4, 2, 3]);
    // the item side comes precomputed from the item tower: [N, D]
    assert.deepEqual(f.cand_item_vec!.dims, [1, 3]);
    assert.deepEqual(floats(f.cand_item_vec), [0.5, -1, 2]);
    assert.throws(
      () =>
        buildRankingFeeds(PRERANK_SPEC, space, userVocab, features, user(history), cands("c", "a"), {
          itemVectors,
        }),
      /item vectors/,
    );
  });

  it("em3 feeds: the history's item vectors LEFT-padded to L, the candidates' as given", () => {
    const features = new ItemFeatureTable(space, catalog(), contentOf());
    const history = ["a", "b"].map((id, i) => ev(id, EventType.RATING, i));
    const f = buildRankingFeeds(EM3_SPEC, space, userVocab, features, user(history), cands("c"), {
      histVectors: { data: new Float32Array([1, 2, 3, 4]), dim: 2, oov: 0 },
      itemVectors: { data: new Float32Array([5, 6]), dim: 2, oov: 0 },
    }).feeds;
    assert.deepEqual(Object.keys(f).sort(), [...EM3_SPEC.inputs].sort());
    assert.deepEqual(f.hist_item_vec!.dims, [1, 4, 2]);
    assert.deepEqual(floats(f.hist_item_vec), [0, 0, 0, 0, 1, 2, 3, 4]);
    assert.deepEqual(floats(f.cand_item_vec), [5, 6]);
    assert.equal(f.hist_content, undefined, "no content columns: the item tower took them");
  });

  it("item rows follow catalogue and content updates, and new items get rows", () => {
    const cat = catalog();
    const content = contentOf();
    const features = new ItemFeatureTable(space, cat, content);
    const feeds = () =>
      buildRankingFeeds(FULL_SPEC, space, userVocab, features, user([]), cands("c", "brand-new")).feeds;
    assert.deepEqual(ints(feeds().cand_genres), [0, 0, 0, 0]);
    cat.upsert({ itemId: "c", title: "C", genres: ["Drama"], year: 2001 });
    cat.upsert({ itemId: "brand-new", title: "New", genres: ["Action"], year: 2026 });
    content.upsert("brand-new", [0, 0, 0, 1], "");
    const f = feeds();
    assert.deepEqual(ints(f.cand_genres), [3, 0, 1, 0]);
    assert.deepEqual(ints(f.cand_year), [102, 127]);
    assert.deepEqual(ints(f.cand_item_idx), [4, 1]);
    assert.deepEqual(floats(f.cand_has_content), [0, 1]);
    assert.deepEqual(floats(f.cand_content).slice(C), [0, 0, 0, 1]);
  });

  it("the content table refuses vectors of another size, another encoder or non-finite values", () => {
    const t = new ContentTable(C, "v", "abcdef0123");
    assert.equal(t.upsert("x", [], "enc@abcdef"), "empty");
    assert.equal(t.upsert("x", [1, 2, 3], "enc@abcdef"), "incompatible");
    assert.equal(t.upsert("x", [1, 2, 3, 4], "enc@999999;fusion=text"), "incompatible");
    assert.equal(t.upsert("x", [1, Number.NaN, 3, 4], "enc@abcdef"), "incompatible");
    assert.equal(t.get("x"), undefined);
    assert.equal(t.upsert("x", [1, 2, 3, 4], "enc@abcdef;fusion=text"), "stored");
    assert.deepEqual(Array.from(t.get("x")!), [1, 2, 3, 4]);
    assert.equal(t.skipped, 3);
  });
});
