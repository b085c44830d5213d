import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newCandidate } from "@recsys/shared";
import { keepWithReserves } from "./reserve.js";

// Ten candidates sorted by prerank score; the fresh and query ones score lowest.
const sorted = () => [
  ...Array.from({ length: 6 }, (_, i) => newCandidate(`s${i}`, { score: 1 - i * 0.1, channels: ["swing"] })),
  newCandidate("q1", { score: 0.3, recallScore: 0.9, channels: ["query"] }),
  newCandidate("q2", { score: 0.2, recallScore: 1, channels: ["query", "swing"] }),
  newCandidate("f1", { score: 0.1, recallScore: 0.5, channels: ["fresh"] }),
  newCandidate("f2", { score: 0.05, recallScore: 1, channels: ["fresh"] }),
];

describe("keepWithReserves", () => {
  it("keeps the top by score when nothing is reserved", () => {
    assert.deepEqual(
      keepWithReserves(sorted(), 4, {}).map((c) => c.itemId),
      ["s0", "s1", "s2", "s3"],
    );
  });

  it("guarantees each reserved channel its best candidates by recall score, displacing the lowest others", () => {
    assert.deepEqual(
      keepWithReserves(sorted(), 5, { fresh: 1, query: 1 }).map((c) => c.itemId),
      ["s0", "s1", "s2", "q2", "f2"],
    );
  });

  it("never returns more than keep, nor fails when a channel has fewer candidates than reserved", () => {
    assert.deepEqual(
      keepWithReserves(sorted(), 3, { fresh: 5, query: 5 }).map((c) => c.itemId),
      ["q1", "q2", "f1"],
    );
    assert.equal(keepWithReserves(sorted(), 20, { fresh: 5 }).length, 10);
  });
});
