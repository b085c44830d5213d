/**
 * Parity with the Python reference (services/trainer/reference/encode_reference.py,
 * table in testdata/reference-vectors.json), semantic sanity, and load errors.
 * The model tests are skipped when scripts/fetch-encoder.sh has not run.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { OnnxPool } from "../onnx/pool.js";
import { dotRows } from "./pooling.js";
import { EncoderLoadError, SentenceEncoder } from "./text-encoder.js";

const ENCODER_DIR =
  process.env.RECSYS_ENCODER_DIR ??
  fileURLToPath(new URL("../../../var/encoder/all-minilm-l6-v2", import.meta.url));
const TABLE = fileURLToPath(new URL("../../src/encoder/testdata/reference-vectors.json", import.meta.url));
const PRESENT = ["model.onnx", "tokenizer.json", "identity.json"].every((f) =>
  existsSync(join(ENCODER_DIR, f)),
);
const SKIP = PRESENT ? false : `encoder files absent in ${ENCODER_DIR}: run scripts/fetch-encoder.sh`;
const TOLERANCE = 1e-4;

interface ReferenceRow {
  name: string;
  text: string;
  token_ids: number[];
  truncated: boolean;
  vector: number[];
}
interface ReferenceTable {
  encoder: { onnx_sha256: string; tokenizer_sha256: string };
  max_tokens: number;
  dim: number;
  sentences: ReferenceRow[];
}

function maxAbsDiff(vectors: Float32Array, row: number, ref: readonly number[]): number {
  let worst = 0;
  for (let k = 0; k < ref.length; k++)
    worst = Math.max(worst, Math.abs(vectors[row * ref.length + k]! - ref[k]!));
  return worst;
}

describe("SentenceEncoder (all-MiniLM-L6-v2)", { skip: SKIP }, () => {
  const table = JSON.parse(readFileSync(TABLE, "utf8")) as ReferenceTable;
  let pool: OnnxPool;
  let encoder: SentenceEncoder;

  before(async () => {
    pool = new OnnxPool({ threads: 1 });
    encoder = await SentenceEncoder.load(ENCODER_DIR, pool, { maxTokens: table.max_tokens });
  });
  after(async () => {
    await pool.close();
  });

  it("is the same model and tokenizer the reference table was made with", () => {
    assert.equal(encoder.dim, table.dim);
    assert.equal(encoder.maxTokens, 256);
    assert.equal(
      encoder.identity.onnxSha256,
      table.encoder.onnx_sha256,
      "model.onnx differs: regenerate the table",
    );
    assert.equal(encoder.identity.tokenizerSha256, table.encoder.tokenizer_sha256, "tokenizer.json differs");
  });

  it("tokenises exactly like the Rust tokenizers library, truncation included", () => {
    for (const row of table.sentences) {
      const t = encoder.tokenize(row.text);
      assert.deepEqual(t.ids, row.token_ids, row.name);
      assert.equal(t.truncated, row.truncated, row.name);
    }
    assert.ok(
      table.sentences.some((r) => r.truncated),
      "the table has a truncated sentence",
    );
  });

  it(`matches the Python reference to <= ${TOLERANCE} (one padded batch, and one text per run)`, async () => {
    const texts = table.sentences.map((r) => r.text);
    const batched = await encoder.encode(texts);
    assert.deepEqual(
      batched.truncated,
      table.sentences.map((r) => r.truncated),
    );
    let worst = 0;
    for (const [i, row] of table.sentences.entries()) {
      const single = await encoder.encode([row.text]);
      const dBatch = maxAbsDiff(batched.vectors, i, row.vector);
      const dSingle = maxAbsDiff(single.vectors, 0, row.vector);
      assert.ok(dBatch <= TOLERANCE, `${row.name}: batched max abs diff ${dBatch}`);
      assert.ok(dSingle <= TOLERANCE, `${row.name}: single max abs diff ${dSingle}`);
      worst = Math.max(worst, dBatch, dSingle);
      let norm = 0;
      for (let k = 0; k < encoder.dim; k++) norm += batched.vectors[i * encoder.dim + k]! ** 2;
      assert.ok(Math.abs(Math.sqrt(norm) - 1) < 1e-5, `${row.name}: norm ${Math.sqrt(norm)}`);
    }
    console.log(`# parity: max abs diff ${worst.toExponential(2)} over ${table.sentences.length} sentences`);
  });

  it("gives the same vectors across batch sizes and orders", async () => {
    const texts = table.sentences.map((r) => r.text);
    const small = await SentenceEncoder.load(ENCODER_DIR, pool, { batchSize: 2, verifyChecksums: false });
    const a = await small.encode(texts);
    const b = await encoder.encode([...texts].reverse());
    const n = texts.length;
    for (let i = 0; i < n; i++) {
      const row = table.sentences[i]!.vector;
      assert.ok(maxAbsDiff(a.vectors, i, row) <= TOLERANCE);
      assert.ok(maxAbsDiff(b.vectors, n - 1 - i, row) <= TOLERANCE);
    }
  });

  it("places a children's animation title nearer another children's title than a horror title", async () => {
    const { vectors } = await encoder.encode([
      "Toy Story (1995) Animation Children Comedy",
      "The Lion King (1994) Animation Children Drama Musical",
      "Halloween (1978) Horror Thriller",
      "funny animated movie for kids",
    ]);
    const d = encoder.dim;
    const children = dotRows(vectors, 0, vectors, 1, d);
    const horror = dotRows(vectors, 0, vectors, 2, d);
    assert.ok(children > horror, `children ${children.toFixed(3)} <= horror ${horror.toFixed(3)}`);
    const queryToy = dotRows(vectors, 3, vectors, 0, d);
    const queryHorror = dotRows(vectors, 3, vectors, 2, d);
    assert.ok(
      queryToy > queryHorror,
      `query: toy ${queryToy.toFixed(3)} <= horror ${queryHorror.toFixed(3)}`,
    );
  });

  it("encodes an empty list to nothing, and cuts a huge text without tokenising all of it", async () => {
    const empty = await encoder.encode([]);
    assert.equal(empty.vectors.length, 0);
    const huge = "word ".repeat(200_000);
    const started = performance.now();
    const t = encoder.tokenize(huge);
    assert.ok(performance.now() - started < 2000);
    assert.equal(t.ids.length, 256);
    assert.equal(t.truncated, true);
  });

  it("fails load() with EncoderLoadError when model.onnx is not a model", async () => {
    const dir = mkdtempSync(join(tmpdir(), "encoder-broken-"));
    try {
      writeFileSync(join(dir, "model.onnx"), "not an onnx model");
      copyFileSync(join(ENCODER_DIR, "tokenizer.json"), join(dir, "tokenizer.json"));
      writeIdentity(dir);
      await assert.rejects(SentenceEncoder.load(dir, pool), (err: Error) => {
        assert.ok(err instanceof EncoderLoadError);
        assert.match(err.message, /ONNX Runtime could not run the model/);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function writeIdentity(dir: string, overrides: Record<string, string> = {}): void {
  const identity = {
    name: "test",
    source: "test",
    onnx_sha256: existsSync(join(dir, "model.onnx")) ? sha256(join(dir, "model.onnx")) : "0",
    tokenizer_sha256: existsSync(join(dir, "tokenizer.json")) ? sha256(join(dir, "tokenizer.json")) : "0",
    ...overrides,
  };
  writeFileSync(join(dir, "identity.json"), JSON.stringify(identity));
}

describe("SentenceEncoder.load errors (no model needed)", () => {
  let pool: OnnxPool;
  let dir: string;
  before(() => {
    pool = new OnnxPool({ threads: 1 });
  });
  after(async () => {
    await pool.close();
  });

  const expectLoadError = async (pattern: RegExp, options = {}): Promise<void> => {
    await assert.rejects(SentenceEncoder.load(dir, pool, options), (err: Error) => {
      assert.ok(err instanceof EncoderLoadError, `${err.name}: ${err.message}`);
      assert.match(err.message, pattern);
      return true;
    });
  };

  it("names the missing directory, identity.json and files, and the fix", async () => {
    dir = join(tmpdir(), `encoder-none-${process.pid}`);
    await expectLoadError(/encoder directory .* is missing: run scripts\/fetch-encoder\.sh/);
    dir = mkdtempSync(join(tmpdir(), "encoder-empty-"));
    try {
      await expectLoadError(/identity\.json is missing/);
      writeFileSync(join(dir, "identity.json"), "{");
      await expectLoadError(/identity\.json is not valid JSON/);
      writeIdentity(dir);
      await expectLoadError(/model\.onnx is missing/);
      writeFileSync(join(dir, "model.onnx"), "");
      await expectLoadError(/model\.onnx is empty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects files that do not match identity.json, and a tokenizer that does not parse", async () => {
    dir = mkdtempSync(join(tmpdir(), "encoder-bad-"));
    try {
      writeFileSync(join(dir, "model.onnx"), "x");
      writeFileSync(join(dir, "tokenizer.json"), "{ not json");
      writeIdentity(dir, { onnx_sha256: "beef" });
      await expectLoadError(/model\.onnx: sha256 .* does not match identity\.json/);
      writeIdentity(dir, { tokenizer_sha256: "beef" });
      await expectLoadError(/tokenizer\.json: sha256 .* does not match/);
      writeIdentity(dir);
      await expectLoadError(/cannot load the tokenizer/);
      await expectLoadError(/maxTokens must be an integer in 3\.\.512/, { maxTokens: 1000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
