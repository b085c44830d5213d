import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ItemCatalog } from "./catalog.js";

const DAY = 86_400_000;
const items = [
  { itemId: "old", title: "Old", genres: ["Drama"], year: 1990 },
  { itemId: "recent", title: "Recent", genres: ["Comedy"], year: 2016 },
  { itemId: "rare", title: "Rare", genres: ["Drama"], year: 2000 },
];
const interactions = [
  ...Array.from({ length: 9 }, (_, k) => ({
    userId: `u${k}`,
    itemId: "old",
    timestampMs: 100 * DAY + k,
    rating: 4,
  })),
  { userId: "u1", itemId: "recent", timestampMs: 195 * DAY, rating: 5 },
  { userId: "u2", itemId: "recent", timestampMs: 200 * DAY, rating: 3 },
  { userId: "u3", itemId: "rare", timestampMs: 150 * DAY, rating: 2 },
];

describe("ItemCatalog.upsert (items from the catalog service)", () => {
  it("adds a new item that genre vectors, titles and ages see", () => {
    const catalog = new ItemCatalog(items, interactions);
    const wallNow = 1_800_000_000_000;
    assert.equal(
      catalog.upsert(
        { itemId: "new", title: "New", genres: ["Comedy", "Space Opera"], year: 2026 },
        wallNow - 2 * DAY,
      ),
      true,
    );
    assert.equal(catalog.title("new"), "New");
    const v = catalog.genreVector("new");
    assert.equal(
      v[catalog.genreIndexOf("Comedy")!],
      1,
      "unknown genres add nothing to the fixed genre vocabulary",
    );
    assert.equal(catalog.ageMs("new", wallNow), 2 * DAY, "catalog items: wall clock");
    assert.equal(
      catalog.ageMs("recent"),
      5 * DAY,
      "dataset items: the dataset's latest event minus the first interaction",
    );
    assert.equal(catalog.ageMs("unknown"), undefined);
  });

  it("replaces an item and its cached genre vector; created_at 0 keeps the dataset age", () => {
    const catalog = new ItemCatalog(items, interactions);
    catalog.genreVector("old");
    assert.equal(
      catalog.upsert({ itemId: "old", title: "Old (restored)", genres: ["Comedy"], year: 1990 }),
      false,
    );
    assert.equal(catalog.genreVector("old")[catalog.genreIndexOf("Comedy")!], 1);
    assert.equal(catalog.createdAtMs("old"), undefined);
    assert.equal(catalog.ageMs("old"), 100 * DAY);
  });

  it("a new item without interactions gets the median item's popularity, not zero", () => {
    const catalog = new ItemCatalog(items, interactions);
    catalog.upsert({ itemId: "new", title: "New", genres: ["Comedy"], year: 2026 }, 1);
    assert.equal(
      catalog.popularityPrior("new"),
      catalog.popularityPrior("recent"),
      "median count is 2 (recent)",
    );
    assert.equal(catalog.popularityPrior("never-seen"), 0);
    assert.equal(catalog.bayesianRating("new"), catalog.globalMeanRating);
  });
});
