import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, env, loadConfig } from "./config.js";

const spec = {
  RECSYS_PORT: env.int(50051, 1, 65535),
  RECSYS_NAME: env.requiredStr(),
  RECSYS_WEIGHTS: env.numberMap("click=1,like=0.5"),
  RECSYS_ON: env.bool(false),
};

describe("loadConfig", () => {
  it("applies defaults and parses values", () => {
    const cfg = loadConfig(spec, { RECSYS_NAME: "x", RECSYS_WEIGHTS: "a=2, b=0.25", RECSYS_ON: "true" });
    assert.deepEqual(cfg, {
      RECSYS_PORT: 50051,
      RECSYS_NAME: "x",
      RECSYS_WEIGHTS: { a: 2, b: 0.25 },
      RECSYS_ON: true,
    });
  });

  it("names every bad or missing variable in one error", () => {
    assert.throws(
      () => loadConfig(spec, { RECSYS_PORT: "70000", RECSYS_WEIGHTS: "click" }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.length === 3 &&
        /RECSYS_PORT=/.test(err.message) &&
        /RECSYS_NAME=<unset>/.test(err.message) &&
        /RECSYS_WEIGHTS=/.test(err.message),
    );
  });
});
