import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { OnnxPool } from "../onnx/pool.js";
import { currentVersion, ModelStoreError, versionDir } from "../store/modelstore.js";
import {
  buildContentEmbeddings,
  CONTENT_IDS_FILE,
  CONTENT_MODEL,
  CONTENT_VECTORS_FILE,
  itemText,
  loadContentEmbeddings,
  publishContentEmbeddings,
} from "./content.js";
import { SentenceEncoder } from "./text-encoder.js";

const ENCODER_DIR =
  process.env.RECSYS_ENCODER_DIR ??
  fileURLToPath(new URL("../../../var/encoder/all-minilm-l6-v2", import.meta.url));
const PRESENT = ["model.onnx", "tokenizer.json", "identity.json"].every((f) =>
  existsSync(join(ENCODER_DIR, f)),
);

describe("itemText", () => {
  it("builds 'title (year). Genres: a, b'", () => {
    assert.equal(
      itemText({
        title: "Toy Story",
        year: 1995,
        genres: ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
      }),
      "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy",
    );
  });
  it("puts a MovieLens trailing article back in front", () => {
    assert.equal(
      itemText({ title: "Shining, The", year: 1980, genres: ["Horror"] }),
      "The Shining (1980). Genres: Horror",
    );
    assert.equal(itemText({ title: "Goofy Movie, A", year: 1995, genres: [] }), "A Goofy Movie (1995).");
    assert.equal(
      itemText({ title: "City of Lost Children, The (Cité des enfants perdus, La)", year: 1995, genres: [] }),
      "City of Lost Children, The (Cité des enfants perdus, La) (1995).",
    );
  });
  it("leaves out unknown parts", () => {
    assert.equal(itemText({ title: "Heat", year: undefined, genres: ["Action"] }), "Heat. Genres: Action");
    assert.equal(itemText({ title: "Heat", year: 1995, genres: ["(no genres listed)"] }), "Heat (1995).");
    assert.equal(itemText({ title: " ", year: undefined, genres: ["Comedy"] }), "Genres: Comedy");
    assert.equal(itemText({ title: "", year: 2016, genres: [] }), "(2016).");
    assert.equal(itemText({ title: "", year: undefined, genres: [] }), "");
  });
});

const identity = { name: "test-encoder", source: "test", onnxSha256: "aa", tokenizerSha256: "bb" };

describe("content embeddings in the model store", () => {
  let store: string;
  before(() => {
    store = mkdtempSync(join(tmpdir(), "content-store-"));
  });
  after(() => rmSync(store, { recursive: true, force: true }));

  it("publishes item_ids.tsv + little-endian content.f32 with the encoder identity, and reads them back", () => {
    const vectors = new Float32Array([1, 0, 0, 0.6, 0.8, 0]);
    const manifest = publishContentEmbeddings(
      store,
      "v1",
      { itemIds: ["10", "x-2"], vectors, dim: 3, truncated: 0, elapsedMs: 1 },
      { identity, maxTokens: 256 },
    );
    assert.equal(currentVersion(store, CONTENT_MODEL), "v1");
    assert.equal(manifest.dim, 3);
    assert.equal(manifest.count, 2);
    assert.deepEqual((manifest.encoder as Record<string, unknown>).onnx_sha256, "aa");
    assert.equal(typeof manifest.text_template, "string");
    const dir = versionDir(store, CONTENT_MODEL, "v1");
    assert.equal(readFileSync(join(dir, CONTENT_IDS_FILE), "utf8"), "index\titem_id\n0\t10\n1\tx-2\n");
    const bytes = readFileSync(join(dir, CONTENT_VECTORS_FILE));
    assert.equal(bytes.length, 24);
    assert.equal(bytes.readFloatLE(16), new Float32Array([0.8])[0]);
    const loaded = loadContentEmbeddings(store);
    assert.deepEqual(loaded.itemIds, ["10", "x-2"]);
    assert.deepEqual([...loaded.vectors], [...vectors]);
  });

  it("refuses a corrupted vectors file and ids that cannot go in a TSV", () => {
    const dir = versionDir(store, CONTENT_MODEL, "v1");
    writeFileSync(join(dir, CONTENT_VECTORS_FILE), new Uint8Array(24));
    assert.throws(() => loadContentEmbeddings(store), ModelStoreError);
    assert.throws(
      () =>
        publishContentEmbeddings(
          store,
          "v2",
          { itemIds: ["a\tb"], vectors: new Float32Array(3), dim: 3, truncated: 0, elapsedMs: 1 },
          { identity, maxTokens: 256 },
        ),
      /cannot go in a TSV/,
    );
  });
});

describe("buildContentEmbeddings with the real encoder", {
  skip: PRESENT ? false : `encoder files absent in ${ENCODER_DIR}: run scripts/fetch-encoder.sh`,
}, () => {
  let pool: OnnxPool;
  before(() => {
    pool = new OnnxPool({ threads: 1 });
  });
  after(async () => {
    await pool.close();
  });

  it("encodes each item's text in input order, across chunks", async () => {
    const encoder = await SentenceEncoder.load(ENCODER_DIR, pool, { batchSize: 2, verifyChecksums: false });
    const items = [
      { itemId: "1", title: "Toy Story", year: 1995, genres: ["Animation", "Children"] },
      { itemId: "2", title: "Halloween", year: 1978, genres: ["Horror"] },
      { itemId: "3", title: "", year: undefined, genres: [] },
      { itemId: "4", title: "Amélie", year: 2001, genres: ["Comedy", "Romance"] },
      { itemId: "5", title: "Heat", year: 1995, genres: ["Action", "Crime", "Thriller"] },
    ];
    const progress: number[] = [];
    const built = await buildContentEmbeddings(items, encoder, {
      chunk: 2,
      onProgress: (p) => progress.push(p.done),
    });
    assert.deepEqual(progress, [2, 4, 5]);
    assert.deepEqual(built.itemIds, ["1", "2", "3", "4", "5"]);
    const direct = await encoder.encode(items.map(itemText));
    for (let k = 0; k < direct.vectors.length; k++) {
      assert.ok(Math.abs(built.vectors[k]! - direct.vectors[k]!) < 1e-5, `value ${k}`);
    }
  });
});
