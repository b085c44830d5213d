import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CatalogStore, type StoreDamage, type StoredItem } from "./store.js";

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
      lines.map((l) => (JSON.parse(l.slice(9)) as StoredItem).itemId),
      ["a", "c"],
    );
  });

  it("moves a damaged line aside, keeps every line after it, and reports it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "catalog-store-"));
    const store = await CatalogStore.open(dir);
    for (const id of ["a", "b", "c", "d"]) await store.put([item(id)]);
    await store.close();
    const path = join(dir, "items.jsonl");
    const bytes = readFileSync(path);
    const second = bytes.indexOf(0x0a) + 1;
    bytes[second + 20] = bytes[second + 20]! ^ 0x01; // one flipped bit in b's line
    writeFileSync(path, bytes);

    const reported: StoreDamage[] = [];
    const reopened = await CatalogStore.open(dir, { onDamage: (d) => reported.push(d) });
    assert.deepEqual([...reopened.values()].map((i) => i.itemId).sort(), ["a", "c", "d"]);
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.line, 2);
    assert.equal(reported[0]!.reason, "checksum mismatch");
    assert.match(readFileSync(`${path}.corrupt`, "utf8"), /"title":"b"/);
    await reopened.close();
    // moved out of the store: the next open finds nothing damaged
    const again = await CatalogStore.open(dir, { onDamage: () => assert.fail("reported twice") });
    assert.equal(again.size, 3);
    await again.close();
  });

  it("still reads lines written before checksums", async () => {
    const dir = mkdtempSync(join(tmpdir(), "catalog-store-"));
    writeFileSync(join(dir, "items.jsonl"), `${JSON.stringify(item("old"))}\n`);
    const store = await CatalogStore.open(dir);
    assert.equal(store.get("old")?.title, item("old").title);
    assert.equal(store.damage.length, 0);
    await store.close();
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
