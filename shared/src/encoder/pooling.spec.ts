import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dotRows, meanPoolNormalize, padBatch } from "./pooling.js";

describe("padBatch", () => {
  it("right-pads to the longest row and masks the padding", () => {
    const b = padBatch(
      [
        [101, 7, 102],
        [101, 102],
      ],
      0,
    );
    assert.equal(b.rows, 2);
    assert.equal(b.seqLen, 3);
    assert.deepEqual([...b.inputIds], [101n, 7n, 102n, 101n, 102n, 0n]);
    assert.deepEqual([...b.attentionMask], [1n, 1n, 1n, 1n, 1n, 0n]);
    assert.deepEqual([...b.tokenTypeIds], [0n, 0n, 0n, 0n, 0n, 0n]);
  });
});

describe("meanPoolNormalize", () => {
  it("averages only the unmasked positions, L2-normalises, and writes to the given rows", () => {
    // 2 rows, seqLen 3, dim 2; row 1 has one padding position holding junk.
    const hidden = new Float32Array([1, 0, 3, 0, 2, 0, 0, 3, 0, 1, 99, 99]);
    const out = new Float32Array(4);
    meanPoolNormalize(hidden, [3, 2], 3, 2, out, [1, 0]);
    // row 0 -> mean (2, 0) -> (1, 0), written to out row 1
    assert.deepEqual([...out.slice(2, 4)], [1, 0]);
    // row 1 -> mean (0, 2) -> (0, 1), padding ignored, written to out row 0
    assert.deepEqual([...out.slice(0, 2)], [0, 1]);
  });

  it("keeps an all-zero row at zero instead of dividing by zero", () => {
    const out = new Float32Array(2);
    meanPoolNormalize(new Float32Array(2), [1], 1, 2, out, [0]);
    assert.deepEqual([...out], [0, 0]);
  });

  it("rejects a hidden state of the wrong size", () => {
    assert.throws(
      () => meanPoolNormalize(new Float32Array(5), [1], 1, 2, new Float32Array(2), [0]),
      /expected/,
    );
  });

  it("dotRows is the cosine of normalised rows", () => {
    const a = new Float32Array([0.6, 0.8, 1, 0]);
    assert.ok(Math.abs(dotRows(a, 0, a, 1, 2) - 0.6) < 1e-7);
  });
});
