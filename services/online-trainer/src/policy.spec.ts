import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { updateDue } from "./policy.js";

const policy = { everySamples: 500, everyMs: 600_000, minSamples: 50 };

describe("updateDue", () => {
  it("fires every N new samples", () => {
    assert.equal(
      updateDue(policy, { buffered: 499, newSinceAttempt: 499, msSinceAttempt: 1_000 }),
      undefined,
    );
    assert.equal(
      updateDue(policy, { buffered: 500, newSinceAttempt: 500, msSinceAttempt: 1_000 }),
      "samples",
    );
  });

  it("fires after T ms with at least the minimum buffered", () => {
    assert.equal(
      updateDue(policy, { buffered: 60, newSinceAttempt: 60, msSinceAttempt: 599_999 }),
      undefined,
    );
    assert.equal(updateDue(policy, { buffered: 60, newSinceAttempt: 60, msSinceAttempt: 600_000 }), "time");
    // Samples kept from a failed attempt count towards the minimum, not towards N.
    assert.equal(updateDue(policy, { buffered: 600, newSinceAttempt: 10, msSinceAttempt: 1_000 }), undefined);
    assert.equal(updateDue(policy, { buffered: 600, newSinceAttempt: 0, msSinceAttempt: 600_000 }), "time");
  });

  it("never fires below the minimum, however long it waited", () => {
    assert.equal(
      updateDue(policy, { buffered: 49, newSinceAttempt: 49, msSinceAttempt: 10 * 600_000 }),
      undefined,
    );
    assert.equal(
      updateDue(policy, { buffered: 0, newSinceAttempt: 0, msSinceAttempt: 10 * 600_000 }),
      undefined,
    );
    const tiny = { everySamples: 10, everyMs: 1_000, minSamples: 50 };
    assert.equal(updateDue(tiny, { buffered: 20, newSinceAttempt: 20, msSinceAttempt: 0 }), undefined);
    assert.equal(updateDue(tiny, { buffered: 50, newSinceAttempt: 50, msSinceAttempt: 0 }), "samples");
  });
});
