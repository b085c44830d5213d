import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  CONFIG_DOC,
  CONFIG_DOC_COMMAND,
  generateConfigDocs,
  repoRoot,
  scanDirectReads,
  scanSpecs,
} from "./config-docs.js";

const root = repoRoot();

describe("configuration reference (docs/configuration.md)", () => {
  it("is up to date with the services' config specs and doc comments", async () => {
    const expected = await generateConfigDocs(root);
    const actual = readFileSync(join(root, CONFIG_DOC), "utf8");
    assert.ok(
      actual === expected,
      `${CONFIG_DOC} is out of date: run \`${CONFIG_DOC_COMMAND}\` and commit the result`,
    );
  });

  it("finds the specs and their doc comments in the sources", () => {
    const specs = scanSpecs(root);
    const recall = specs.get("recallConfigSpec");
    assert.equal(recall?.file, join("services", "recall", "src", "config.ts"));
    assert.deepEqual(recall?.entries[0], { spread: "itemFeedConfigSpec" });
    const entry = recall?.entries.find((e) => "key" in e && e.key === "RECSYS_HNSW_EF");
    assert.deepEqual(entry, {
      key: "RECSYS_HNSW_EF",
      doc: "HNSW search breadth (higher: better recall, slower).",
    });
  });

  it("finds direct process.env reads, including through a NodeJS.ProcessEnv parameter", () => {
    const reads = new Map(scanDirectReads(root).map((r) => [r.name, r.files]));
    assert.ok(reads.get("RECSYS_EXIT_WITH_PARENT")?.includes(join("shared", "src", "runtime.ts")));
    assert.ok(reads.has("RECSYS_BASE_PORT"));
  });
});
