import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CircuitBreaker } from "./breaker.js";

describe("CircuitBreaker", () => {
  it("opens after `threshold` failures in a row, skips calls for the cooldown, then lets one probe out", () => {
    let now = 0;
    const b = new CircuitBreaker("rank", 3, 1_000, () => now);
    for (let i = 0; i < 2; i++) {
      assert.ok(b.allow());
      b.failure();
    }
    assert.ok(b.allow(), "2 failures: still closed");
    b.success();
    for (let i = 0; i < 3; i++) {
      assert.ok(b.allow());
      b.failure();
    }
    assert.ok(b.open);
    assert.equal(b.allow(), false, "open: skipped");
    now += 999;
    assert.equal(b.allow(), false, "still cooling down");
    now += 1;
    assert.equal(b.allow(), true, "half-open: one probe");
    assert.equal(b.allow(), false, "only one probe at a time");
    b.failure();
    assert.equal(b.allow(), false, "the probe failed: open for another cooldown");
    now += 1_000;
    assert.equal(b.allow(), true);
    b.success();
    assert.equal(b.open, false, "the probe succeeded: closed");
    assert.ok(b.allow() && b.allow(), "calls flow again");
  });
});
