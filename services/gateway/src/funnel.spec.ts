import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { RpcError } from "@recsys/shared";
import { RecommendRequestSchema } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { applyOverrides, assignVariant, type Experiment, homeFeed, loadFunnelFile } from "./funnel.js";
import { validateRecommend } from "./validate.js";

describe("experiment assignment", () => {
  const experiment: Experiment = {
    name: "exp",
    variants: [
      { name: "a", weight: 1 },
      { name: "b", weight: 3 },
    ],
  };

  it("is stable per user and follows the weights", () => {
    const counts = { a: 0, b: 0 } as Record<string, number>;
    for (let u = 0; u < 4000; u++) {
      const v = assignVariant(experiment, `user-${u}`);
      assert.equal(assignVariant(experiment, `user-${u}`).name, v.name);
      counts[v.name]!++;
    }
    assert.ok(Math.abs(counts.a! / 4000 - 0.25) < 0.03, JSON.stringify(counts));
  });

  it("differs between experiments for the same user (independent hashing)", () => {
    const other: Experiment = { ...experiment, name: "other" };
    let same = 0;
    for (let u = 0; u < 1000; u++)
      if (assignVariant(experiment, `${u}`).name === assignVariant(other, `${u}`).name) same++;
    assert.ok(same < 800, `assignments should not be identical across experiments (${same}/1000)`);
  });

  it("a variant overrides fields without forking the funnel; quota and weight maps replace whole", () => {
    const f = applyOverrides(homeFeed, {
      rerank: { weights: { like: 2 } },
      recall: { channels: { popular: 50 } },
    });
    assert.deepEqual(f.rerank.weights, { like: 2 });
    assert.deepEqual(f.recall.channels, { popular: 50 });
    assert.equal(f.recall.budgetMs, homeFeed.recall.budgetMs);
    assert.equal(f.rank.budgetMs, homeFeed.rank.budgetMs);
  });
});

describe("loadFunnelFile", () => {
  const write = (content: unknown) => {
    const path = join(mkdtempSync(join(tmpdir(), "funnel-file-")), "funnel.json");
    writeFileSync(path, JSON.stringify(content));
    return path;
  };

  it("takes an evaluation cut after a stage", () => {
    for (const stage of ["recall", "prerank", "rank"])
      assert.equal(loadFunnelFile(write({ funnel: { stopAfter: stage } })).funnel?.stopAfter, stage);
  });

  it("refuses a cut after an unknown stage, naming the field and the valid stages", () => {
    assert.throws(
      () => loadFunnelFile(write({ funnel: { stopAfter: "rerank" } })),
      /funnel\.stopAfter must be one of recall, prerank, rank, got "rerank"/,
    );
  });
});

describe("validateRecommend", () => {
  const limits = { maxCount: 100 };
  const cases: Array<[string, Parameters<typeof create<typeof RecommendRequestSchema>>[1], RegExp]> = [
    ["empty user", { userId: "", count: 1 }, /^user_id: must not be empty/],
    ["control characters", { userId: "a\nb", count: 1 }, /^user_id: must not contain control characters/],
    ["count zero", { userId: "u", count: 0 }, /^count: /],
    ["count too big", { userId: "u", count: 101 }, /^count: /],
    ["long query", { userId: "u", count: 1, query: "q".repeat(2000) }, /^query: /],
    [
      "too many context entries",
      {
        userId: "u",
        count: 1,
        context: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])),
      },
      /^context: /,
    ],
  ];
  for (const [name, init, pattern] of cases) {
    it(`rejects ${name} with INVALID_ARGUMENT naming the field`, () => {
      assert.throws(
        () => validateRecommend(create(RecommendRequestSchema, init), limits),
        (e: unknown) =>
          e instanceof RpcError && e.code === status.INVALID_ARGUMENT && pattern.test(e.message),
      );
    });
  }

  it("accepts a good request", () => {
    assert.deepEqual(
      validateRecommend(create(RecommendRequestSchema, { userId: "u", count: 100, query: "space" }), limits),
      { count: 100 },
    );
  });
});
