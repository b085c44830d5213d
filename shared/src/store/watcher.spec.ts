import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLogger } from "../log.js";
import { Metrics } from "../metrics.js";
import { publishVersion, versionDir } from "./modelstore.js";
import { ModelWatcher } from "./watcher.js";

/** Publishes a version whose `weights.txt` holds `content`. */
function publish(store: string, version: string, content: string): void {
  const dir = versionDir(store, "m", version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "weights.txt"), content);
  publishVersion(store, "m", version, ["weights.txt"]);
}

function watcher(store: string, metrics = new Metrics("t")) {
  return new ModelWatcher<number>({
    store,
    model: "m",
    logger: createLogger("t", "silent"),
    metrics,
    pollMs: 50,
    disposeDelayMs: 0,
    // "Validation": the weights must parse as a finite number.
    async load(dir) {
      const value = Number(readFileSync(join(dir, "weights.txt"), "utf8"));
      if (!Number.isFinite(value)) throw new Error("non-finite weights");
      return value;
    },
  });
}

describe("ModelWatcher", () => {
  it("loads the current version, then swaps to a new one", async () => {
    const store = mkdtempSync(join(tmpdir(), "watch-"));
    publish(store, "v1", "1");
    const metrics = new Metrics("t");
    const w = watcher(store, metrics);
    await w.start();
    assert.equal(w.current()?.value, 1);
    publish(store, "v2", "2");
    await w.check();
    assert.equal(w.current()?.version, "v2");
    assert.equal(w.current()?.value, 2);
    assert.match(
      await metrics.registry.metrics(),
      /recsys_model_version_info\{model="m",version="v2",service="t"\} 1/,
    );
    w.stop();
  });

  it("rejects a version that fails validation or its checksums, and keeps serving the old one", async () => {
    const store = mkdtempSync(join(tmpdir(), "watch-"));
    publish(store, "v1", "1");
    const metrics = new Metrics("t");
    const w = watcher(store, metrics);
    await w.start();
    publish(store, "v2", "not a number");
    await w.check();
    assert.equal(w.current()?.version, "v1");
    publish(store, "v3", "3");
    writeFileSync(join(versionDir(store, "m", "v3"), "weights.txt"), "33"); // corrupted after publishing
    await w.check();
    assert.equal(w.current()?.version, "v1");
    assert.match(
      await metrics.registry.metrics(),
      /recsys_model_loads_total\{model="m",outcome="rejected",service="t"\} 2/,
    );
    publish(store, "v4", "4");
    await w.check();
    assert.equal(w.current()?.value, 4);
    w.stop();
  });

  it("serves nothing until a version exists", async () => {
    const w = watcher(mkdtempSync(join(tmpdir(), "watch-")));
    await w.start();
    assert.equal(w.current(), undefined);
    w.stop();
  });
});
