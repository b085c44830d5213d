import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatDuration, parseDuration } from "./duration.js";

describe("parseDuration", () => {
  for (const [text, ms] of [
    ["500ms", 500],
    ["30s", 30_000],
    ["2m", 120_000],
    ["1h30m", 5_400_000],
    ["1m30s", 90_000],
    ["1.5s", 1_500],
    ["20", 20_000],
  ] as const) {
    it(`${text} -> ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  }
  for (const bad of ["", "s", "10x", "10 s", "-1s", "1s2"]) {
    it(`rejects "${bad}" with the field name`, () =>
      assert.throws(() => parseDuration(bad, "scenarios.a.duration"), /scenarios\.a\.duration/));
  }
  it("formats", () => {
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(20_000), "20s");
    assert.equal(formatDuration(90_000), "1m30s");
  });
});
