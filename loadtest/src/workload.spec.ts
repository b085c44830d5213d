import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "./schedule.js";
import { buildQuery, pickIndex, RecentRecommendations } from "./workload.js";

describe("traffic data", () => {
  it("draws indices in proportion to their weights", () => {
    const cum = new Float64Array([1, 3, 6]); // weights 1, 2, 3
    const r = seededRandom(3);
    const n = [0, 0, 0];
    for (let i = 0; i < 60_000; i++) n[pickIndex(cum, r())]!++;
    assert.ok(Math.abs(n[0]! / 60_000 - 1 / 6) < 0.01, String(n));
    assert.ok(Math.abs(n[2]! / 60_000 - 3 / 6) < 0.01, String(n));
    assert.equal(pickIndex(cum, 0), 0);
    assert.equal(pickIndex(cum, 0.999999), 2);
  });

  it("builds short queries from titles and genres", () => {
    const r = seededRandom(5);
    const item = { title: "The Lord of the Rings: The Two Towers", genres: ["Adventure", "Fantasy"] };
    const queries = new Set(Array.from({ length: 200 }, () => buildQuery(item, r)));
    for (const q of queries) {
      assert.ok(q.length > 0 && q.length < 60, q);
      assert.ok(!/\bthe\b/.test(q), `stop words dropped: ${q}`);
    }
    assert.ok(queries.has("adventure") || queries.has("fantasy"));
    assert.ok([...queries].some((q) => q.includes("lord")));
    assert.equal(buildQuery({ title: "", genres: [] }, r), "movie");
  });

  it("keeps the most recent answers in a ring", () => {
    const ring = new RecentRecommendations(2);
    assert.equal(ring.pick(Math.random), undefined);
    const items = (id: string) => [{ itemId: id }] as never;
    ring.push("u1", "r1", items("a"));
    ring.push("u2", "r2", items("b"));
    ring.push("u3", "r3", items("c"));
    ring.push("u4", "r4", []); // empty answers are not kept
    assert.equal(ring.size, 2);
    const users = new Set(Array.from({ length: 50 }, (_, i) => ring.pick(() => (i % 2) / 2 + 0.1)!.userId));
    assert.deepEqual([...users].sort(), ["u2", "u3"]);
  });
});
