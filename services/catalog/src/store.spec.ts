import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CatalogStore, type StoredItem } from "./store.js";

const item = (itemId: string, title = itemId): StoredItem => ({
  itemId,
  title,
  description: "",
  genres: ["Drama"],
  year: 2020,
  createdAtMs: 1,
  modalities: [{ modality: "image", dim: 2, values: [0.5, 0.25] }],
  textVector: [1, 0],
  contentVector: [1, 0],
  encoder: "fake@0;fusion=text",
  updatedAtMs: 2,
});

describe("CatalogStore", () => {
  it("keeps the latest version of each item across a reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "catalog-store-"));
    const store = await CatalogStore.open(dir);
    await store.put([item("a"), item("b")]);
    await store.put([item("a", "A, replaced")]);
    assert.equal(store.size, 2);
    assert.equal(store.get("a")!.title, "A, replaced");
    await store.close();

    const again = await CatalogStore.open(dir);
    assert.equal(again.size, 2);
    assert.equal(again.get("a")!.title, "A, replaced");
    assert.deepEqual(again.get("b")!.modalities, item("b").modalities);
    await again.close();
  });

  it("drops a torn last line (a batch that was never acknowledged) and appends after it cleanly", async () => {
    const dir = mkdtempSync(join(tmpdir(), "catalog-store-"));
    const store = await CatalogStore.open(dir);
    await store.put([item("a")]);
    await store.close();
    appendFileSync(join(dir, "items.jsonl"), '{"itemId":"b","title":"half wri');

    const reopened = await CatalogStore.open(dir);
    assert.equal(reopened.size, 1);
    await reopened.put([item("c")]);
    await reopened.close();
    const lines = readFileSync(join(dir, "items.jsonl"), "utf8").trimEnd().split("\n");
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as StoredItem).itemId),
      ["a", "c"],
    );
  });

  it("compacts a file that is mostly replaced lines", async () => {
    const dir = mkdtempSync(join(tmpdir(), "catalog-store-"));
    const store = await CatalogStore.open(dir);
    for (let k = 0; k < 12; k++)
      await store.put(Array.from({ length: 100 }, (_, i) => item(`i${i}`, `v${k}`)));
    await store.close();
    const reopened = await CatalogStore.open(dir);
    assert.equal(reopened.size, 100);
    assert.equal(reopened.get("i7")!.title, "v11");
    await reopened.close();
    assert.equal(readFileSync(join(dir, "items.jsonl"), "utf8").trimEnd().split("\n").length, 100);
  });
});
