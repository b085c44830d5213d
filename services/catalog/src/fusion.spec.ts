import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fuse, project, projectionMatrix, projectionSeed } from "./fusion.js";

const unit = (values: number[]) => {
  const n = Math.hypot(...values);
  return Float32Array.from(values.map((v) => v / n));
};
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const norm = (a: Float32Array) => Math.sqrt(dot(a, a));

describe("projection", () => {
  it("is fixed by the modality name and dimensions (documented seed and generator)", () => {
    assert.equal(projectionSeed("image", 512, 384), projectionSeed("image", 512, 384));
    assert.notEqual(projectionSeed("image", 512, 384), projectionSeed("video", 512, 384));
    assert.notEqual(projectionSeed("image", 512, 384), projectionSeed("image", 256, 384));
    // Pinned values: a change of the generator changes every stored fused vector.
    assert.equal(projectionSeed("image", 512, 384), 0x23c4c492);
    const p = projectionMatrix("image", 512, 384);
    assert.equal(p.length, 512 * 384);
    assert.deepEqual(
      Array.from(p.subarray(0, 3)).map((v) => v.toFixed(6)),
      ["0.036886", "0.049378", "-0.044090"],
    );
  });

  it("has entries of mean ~0 and variance ~1/toDim", () => {
    const p = projectionMatrix("video", 256, 384);
    const mean = p.reduce((s, x) => s + x, 0) / p.length;
    const variance = p.reduce((s, x) => s + (x - mean) ** 2, 0) / p.length;
    assert.ok(Math.abs(mean) < 1e-3, `mean ${mean}`);
    assert.ok(Math.abs(variance * 384 - 1) < 0.02, `variance x dim ${variance * 384}`);
  });

  it("roughly preserves similarity within a modality", () => {
    const a = unit(Array.from({ length: 256 }, (_, i) => Math.sin(i)));
    const b = unit(Array.from({ length: 256 }, (_, i) => Math.sin(i) + 0.3 * Math.cos(3 * i)));
    const c = unit(Array.from({ length: 256 }, (_, i) => Math.cos(7 * i + 1)));
    const pa = project(a, "video", 384);
    const pb = project(b, "video", 384);
    const pc = project(c, "video", 384);
    assert.ok(Math.abs(norm(pa) - 1) < 1e-5);
    assert.ok(Math.abs(dot(pa, pb) - dot(a, b)) < 0.15, `${dot(pa, pb)} vs ${dot(a, b)}`);
    assert.ok(Math.abs(dot(pa, pc) - dot(a, c)) < 0.15, `${dot(pa, pc)} vs ${dot(a, c)}`);
  });
});

describe("fuse", () => {
  const text = unit(Array.from({ length: 384 }, (_, i) => (i % 7) - 3));
  const image = { modality: "image", values: unit(Array.from({ length: 512 }, (_, i) => Math.cos(i))) };

  it("text: the text vector alone, none without text", () => {
    const fused = fuse({ rule: "text", weights: {} }, text, [image], 384);
    assert.deepEqual(Array.from(fused!), Array.from(text));
    assert.equal(fuse({ rule: "text", weights: {} }, undefined, [image], 384), undefined);
  });

  it("weighted: unit length, mostly text when text weighs more, deterministic", () => {
    const config = { rule: "weighted" as const, weights: { text: 1, image: 0.5 } };
    const fused = fuse(config, text, [image], 384)!;
    assert.ok(Math.abs(norm(fused) - 1) < 1e-5);
    const towardsText = dot(fused, text);
    assert.ok(towardsText > 0.8 && towardsText < 1, `cos(fused, text) = ${towardsText}`);
    assert.deepEqual(Array.from(fuse(config, text, [image], 384)!), Array.from(fused));
  });

  it("weighted: an item with vectors only gets their projection; zero weights give no vector", () => {
    const fused = fuse({ rule: "weighted", weights: {} }, undefined, [image], 384)!;
    assert.deepEqual(Array.from(fused), Array.from(project(image.values, "image", 384)));
    assert.equal(fuse({ rule: "weighted", weights: { text: 0, image: 0 } }, text, [image], 384), undefined);
  });
});
