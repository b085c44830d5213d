import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdaptiveLimiter } from "./admission.js";

/** Admits `n` calls at once; returns their inFlightAtStart. */
function fill(limiter: AdaptiveLimiter, n: number): number[] {
  const starts: number[] = [];
  for (let i = 0; i < n; i++) {
    const d = limiter.acquire(Number.POSITIVE_INFINITY);
    assert.ok(d.admitted, `call ${i} admitted`);
    starts.push(d.inFlightAtStart);
  }
  return starts;
}

describe("adaptive admission", () => {
  it("refuses at once beyond the limit, and admits again when a call ends", () => {
    const limiter = new AdaptiveLimiter({ targetMs: 50, initialLimit: 4 });
    const starts = fill(limiter, 4);
    assert.deepEqual(limiter.acquire(Number.POSITIVE_INFINITY), { admitted: false, why: "limit" });
    limiter.release(10, false, starts[0]!);
    assert.ok(limiter.acquire(Number.POSITIVE_INFINITY).admitted);
  });

  it("grows while fast calls use the limit, and backs off on slow or overloaded ones", () => {
    const limiter = new AdaptiveLimiter({ targetMs: 50, initialLimit: 4, maxLimit: 64 });
    let now = 0;
    for (let round = 0; round < 40; round++) {
      const starts = fill(limiter, limiter.limit);
      for (const s of starts) limiter.release(10, false, s, (now += 1));
    }
    const grown = limiter.limit;
    assert.ok(grown >= 12, `limit grew under fast, saturated load (got ${grown})`);
    // slow answers at the limit: x0.9 at most once per quarter of targetMs
    for (let i = 0; i < 20; i++) {
      const [s] = fill(limiter, 1);
      limiter.release(200, false, limiter.limit, (now += 60));
      void s;
    }
    assert.ok(limiter.limit < grown * 0.3, `limit fell after slow answers (${grown} -> ${limiter.limit})`);
    const before = limiter.limit;
    const [s] = fill(limiter, 1);
    limiter.release(10, true, limiter.limit, (now += 60)); // fast but flagged overloaded
    assert.ok(limiter.limit < before || limiter.limit === 2, "an overloaded answer backs off too");
    void s;
  });

  it("ignores slow answers while the limit is not in use (noise at low load)", () => {
    const limiter = new AdaptiveLimiter({ targetMs: 50, initialLimit: 10 });
    let now = 0;
    for (let i = 0; i < 50; i++) {
      const [s] = fill(limiter, 1);
      limiter.release(500, true, s!, (now += 100));
    }
    assert.equal(limiter.limit, 10);
  });

  it("refuses a call whose deadline leaves less time than the fastest recent answer", () => {
    const limiter = new AdaptiveLimiter({ targetMs: 50 });
    assert.ok(limiter.acquire(1).admitted, "no answer yet: nothing to compare with");
    limiter.release(20, false, 0);
    assert.deepEqual(limiter.acquire(5), { admitted: false, why: "deadline" });
    assert.ok(limiter.acquire(25).admitted);
  });
});
