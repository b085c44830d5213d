import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { currentVersion, publishVersion, readVerifiedManifest, versionDir } from "./modelstore.js";

describe("model store", () => {
  it("publishes a version, points CURRENT at it and verifies checksums", () => {
    const store = mkdtempSync(join(tmpdir(), "store-"));
    const dir = versionDir(store, "m", "v1");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "table.tsv"), "a\t1\n");
    publishVersion(store, "m", "v1", ["table.tsv"], { note: "test" });
    assert.equal(currentVersion(store, "m"), "v1");
    assert.equal(readVerifiedManifest(store, "m", "v1").note, "test");
    writeFileSync(join(dir, "table.tsv"), "a\t2\n");
    assert.throws(() => readVerifiedManifest(store, "m", "v1"), /checksum mismatch/);
  });

  it("has no current version before anything is published", () => {
    assert.equal(currentVersion(mkdtempSync(join(tmpdir(), "store-")), "m"), undefined);
  });
});
