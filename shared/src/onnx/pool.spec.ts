import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BufferPool } from "./pool.js";

describe("BufferPool (reused ONNX input buffers)", () => {
  it("hands a released buffer out again, zeroed over the asked length", () => {
    const pool = new BufferPool();
    const a = pool.take(5000);
    assert.equal(a.byteLength, 8192, "sizes are powers of two");
    new Uint8Array(a).fill(7);
    pool.release([a]);
    const b = pool.take(6000);
    assert.equal(b, a, "the same buffer comes back");
    assert.ok(new Uint8Array(b, 0, 6000).every((x) => x === 0));
  });

  it("keeps a bounded number per size and ignores buffers it did not make", () => {
    const pool = new BufferPool(1);
    const [a, b] = [pool.take(4096), pool.take(4096)];
    pool.release([a, b, new ArrayBuffer(100), new ArrayBuffer(5000)]);
    assert.equal(pool.take(4096), a);
    assert.notEqual(pool.take(4096), b, "only one was kept");
    assert.equal(pool.take(5000).byteLength, 8192);
  });
});
