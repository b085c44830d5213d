import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Candidate, ContentTable, ItemCatalog, newCandidate, type StageContext } from "@recsys/shared";
import { itemSimilarity, mmrSelector } from "./selectors.js";

/** The plain greedy MMR loop: every candidate compared with every pick (the definition). */
function plainMmr(
  catalog: ItemCatalog,
  content: ContentTable,
  lambda: number,
  poolSize: number,
  candidates: Candidate[],
  count: number,
): string[] {
  const pool = candidates.slice(0, Math.max(count, poolSize));
  const max = Math.max(...pool.map((c) => c.score));
  const min = Math.min(...pool.map((c) => c.score));
  const span = max - min || 1;
  const similarity = itemSimilarity(
    catalog,
    content,
    pool.map((c) => c.itemId),
  );
  const maxSim = new Float64Array(pool.length);
  const taken = new Uint8Array(pool.length);
  const picked: Candidate[] = [];
  for (let round = 0; round < Math.min(count, pool.length); round++) {
    let best = -1;
    let bestValue = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < pool.length; i++) {
      if (taken[i]) continue;
      const value = lambda * ((pool[i]!.score - min) / span) - (1 - lambda) * maxSim[i]!;
      if (value > bestValue) {
        bestValue = value;
        best = i;
      }
    }
    taken[best] = 1;
    picked.push(pool[best]!);
    for (let i = 0; i < pool.length; i++)
      if (!taken[i]) maxSim[i] = Math.max(maxSim[i]!, similarity(i, best));
  }
  return [...picked, ...pool.filter((_, i) => !taken[i]), ...candidates.slice(pool.length)].map(
    (c) => c.itemId,
  );
}

describe("MMR selector", () => {
  it("gives exactly the plain greedy loop's list (lazy updates change only the work)", () => {
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const genres = ["Action", "Comedy", "Drama", "Horror", "Romance"];
    const items = Array.from({ length: 300 }, (_, i) => ({
      itemId: `i${i}`,
      title: `Item ${i}`,
      genres: [genres[i % 5]!, genres[(i * 7) % 5]!],
      year: 2000,
    }));
    const catalog = new ItemCatalog(items, []);
    const content = new ContentTable(8);
    // a third of the items without a content vector (compared by genre); near-duplicates among the rest
    for (let i = 0; i < 300; i++)
      if (i % 3 !== 0)
        content.upsert(
          `i${i}`,
          Array.from({ length: 8 }, (_, k) => (k === i % 8 ? 1 : 0) + random() * 0.3),
          "",
        );
    const ctx = {} as StageContext;
    for (const [lambda, poolSize, count, ties] of [
      [0.7, 100, 20, false],
      [0.5, 50, 10, false],
      [0.3, 300, 40, false],
      [0.7, 100, 20, true],
      [0.9, 10, 30, false],
    ] as const) {
      const candidates = () =>
        items.map((it) => newCandidate(it.itemId, { score: ties ? Math.round(random() * 4) / 4 : random() }));
      for (let trial = 0; trial < 5; trial++) {
        const input = candidates().sort((a, b) => b.score - a.score);
        const lazy = mmrSelector(catalog, lambda, poolSize, content)
          .select(ctx, [...input], count)
          .map((c) => c.itemId);
        assert.deepEqual(lazy, plainMmr(catalog, content, lambda, poolSize, [...input], count));
      }
    }
  });
});
