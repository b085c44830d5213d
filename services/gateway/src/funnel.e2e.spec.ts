/**
 * End to end: the five real service processes on loopback, called over gRPC
 * exactly as a product backend would. Needs `bash scripts/setup.sh` (data and
 * the Swing model) first; `npm test` does that.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { checkHealth, LocalStack, RELAXED_BUDGETS, relaxedBudgetEnv } from "@recsys/local";
import { type ClientOf, createClient, groupByUser, loadInteractions } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import {
  FeedbackService,
  RecommendService,
} from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

import { applyOverrides, defaultExperiment, homeFeed, STAGE_STEPS } from "./funnel.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const DATA = join(ROOT, "data", "ml-latest-small");
const BASE_PORT = Number(process.env.RECSYS_E2E_BASE_PORT ?? 56051);

type GrpcError = { code: number; details: string };
const isCode = (code: number, detailsPattern?: RegExp) => (e: unknown) => {
  const err = e as GrpcError;
  return err.code === code && (!detailsPattern || detailsPattern.test(err.details));
};

describe("funnel end to end (five processes over gRPC)", { concurrency: false }, () => {
  let stack: LocalStack;
  let recommend: ClientOf<typeof RecommendService>;
  let feedback: ClientOf<typeof FeedbackService>;
  const seen = new Map<string, Set<string>>();

  function makeClients(target: string) {
    return {
      recommend: createClient(RecommendService, target),
      feedback: createClient(FeedbackService, target),
    };
  }

  before(async () => {
    for (const [user, rows] of groupByUser(await loadInteractions(DATA)))
      seen.set(user, new Set(rows.map((r) => r.itemId)));
    const stateDir = mkdtempSync(join(tmpdir(), "recsys-e2e-"));
    stack = await LocalStack.start({
      rootDir: ROOT,
      basePort: BASE_PORT,
      modelStore: resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models"),
      logDir: join(ROOT, "var", "log", "e2e"),
      // Its own embedded bus and spill directories: never the ones of a running `npm start`.
      stateDir,
      serviceEnv: relaxedBudgetEnv(stateDir),
    });
    ({ recommend, feedback } = makeClients(stack.gatewayTarget));
  });

  after(async () => {
    recommend?.close();
    feedback?.close();
    await stack?.stopAll();
  });

  it("returns `count` distinct items, none seen or excluded, with provenance", async () => {
    const user = "15";
    const first = await recommend.recommend({ userId: user, count: 20 }, { timeoutMs: 2_000 });
    const exclude = first.items.slice(0, 5).map((i) => i.itemId);
    const res = await recommend.recommend(
      { userId: user, count: 20, excludeItemIds: exclude },
      { timeoutMs: 2_000 },
    );
    assert.equal(res.items.length, 20);
    const ids = res.items.map((i) => i.itemId);
    assert.equal(new Set(ids).size, ids.length, "no duplicates");
    for (const id of ids) {
      assert.ok(!seen.get(user)!.has(id), `item ${id} was already seen by the user`);
      assert.ok(!exclude.includes(id), `item ${id} was excluded`);
    }
    assert.ok(res.requestId.length > 0);
    assert.deepEqual(res.degradations, []);
    assert.match(res.experimentVariant, /^home_feed_2026_11\/(control|more_likes)$/);
    for (const key of [
      "recall.kuaiformer",
      "recall.generative",
      "recall.swing",
      "recall.popular",
      "prerank",
      "rank",
      "rerank",
    ]) {
      assert.ok(res.modelVersions[key], `model_versions has ${key}`);
    }
    for (const item of res.items) {
      assert.ok(
        item.channels.length > 0 &&
          item.channels.every((c) => ["kuaiformer", "generative", "swing", "fresh", "popular"].includes(c)),
      );
      assert.ok(item.reason.length > 0);
      assert.ok(Number.isFinite(item.score));
      assert.ok(item.taskScores.click !== undefined && item.taskScores.like !== undefined);
    }
    // The contract of `score`: the fused relevance with the variant's weights (not the sort key).
    const variant = defaultExperiment.variants.find(
      (v) => `${defaultExperiment.name}/${v.name}` === res.experimentVariant,
    )!;
    const weights = applyOverrides(homeFeed, variant.overrides).rerank.weights;
    for (const item of res.items) {
      const fused = Object.entries(item.taskScores).reduce((s, [t, v]) => s + (weights[t] ?? 0) * v, 0);
      assert.ok(Math.abs(item.score - fused) < 1e-9, `${item.itemId}: score ${item.score}, fused ${fused}`);
    }
    const scores = res.items.map((i) => i.score);
    assert.ok(
      res.items.some((i) => i.channels.includes("swing") || i.channels.includes("kuaiformer")),
      "a user with history gets personalised candidates",
    );
    assert.ok(res.items.some((i) => i.reason.startsWith("because you watched")));
    assert.ok(scores.length === 20);
  });

  it("rejects bad input with INVALID_ARGUMENT naming the field", async () => {
    const cases: Array<[string, Parameters<typeof recommend.recommend>[0], RegExp]> = [
      ["empty user_id", { userId: "", count: 10 }, /^user_id: /],
      ["oversized user_id", { userId: "u".repeat(200), count: 10 }, /^user_id: /],
      ["count 0", { userId: "1", count: 0 }, /^count: /],
      ["negative count", { userId: "1", count: -3 }, /^count: /],
      ["count above the maximum", { userId: "1", count: 101 }, /^count: /],
      ["empty excluded id", { userId: "1", count: 10, excludeItemIds: [""] }, /^exclude_item_ids\[0\]: /],
    ];
    for (const [name, req, pattern] of cases) {
      await assert.rejects(
        recommend.recommend(req, { timeoutMs: 2_000 }),
        isCode(status.INVALID_ARGUMENT, pattern),
        name,
      );
    }
  });

  it("rejects a request over the size limit with RESOURCE_EXHAUSTED", async () => {
    const huge = Array.from({ length: 900 }, (_, i) => `item-${i}-${"x".repeat(100)}`);
    await assert.rejects(
      recommend.recommend({ userId: "1", count: 10, excludeItemIds: huge }, { timeoutMs: 2_000 }),
      isCode(status.RESOURCE_EXHAUSTED),
    );
  });

  it("gives an unknown user popular items, flagged", async () => {
    const res = await recommend.recommend({ userId: "never-seen-user", count: 10 }, { timeoutMs: 2_000 });
    assert.equal(res.items.length, 10);
    assert.ok(res.degradations.includes("unknown_user"));
    assert.ok(res.items.every((i) => i.channels.includes("popular")));
  });

  it("serves health and reflection on the gateway", async () => {
    assert.equal(await checkHealth(stack.gatewayTarget), "SERVING");
    assert.equal(await checkHealth(stack.gatewayTarget, "recsys.recommend.v1.RecommendService"), "SERVING");
    const listed = execFileSync(
      join(ROOT, "node_modules", ".bin", "buf"),
      [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--list-services",
        `http://${stack.gatewayTarget}`,
      ],
      { encoding: "utf8" },
    );
    assert.match(listed, /recsys\.recommend\.v1\.RecommendService/);
    assert.match(listed, /recsys\.recommend\.v1\.FeedbackService/);
  });

  it("feedback is validated, and a reported item counts as seen at once", async () => {
    await assert.rejects(
      feedback.report(
        { events: [{ userId: "15", itemId: "1", type: EventType.UNSPECIFIED }] },
        { timeoutMs: 2_000 },
      ),
      isCode(status.INVALID_ARGUMENT, /^events\[0\]\.type: /),
    );
    const before = await recommend.recommend({ userId: "15", count: 10 }, { timeoutMs: 2_000 });
    const watched = before.items[0]!.itemId;
    const ack = await feedback.report(
      {
        events: [
          { userId: "15", itemId: watched, type: EventType.WATCH, value: 3600, requestId: before.requestId },
        ],
      },
      { timeoutMs: 2_000 },
    );
    assert.equal(ack.eventIds.length, 1);
    const afterFeedback = await recommend.recommend({ userId: "15", count: 10 }, { timeoutMs: 2_000 });
    assert.ok(!afterFeedback.items.some((i) => i.itemId === watched));
  });

  it("answers within the deadline with rank_fallback while rank hangs", async () => {
    stack.pause("rank", true);
    try {
      const started = Date.now();
      const res = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 5_000 });
      const elapsed = Date.now() - started;
      assert.ok(
        elapsed < RELAXED_BUDGETS.totalBudgetMs + 500,
        `answered in ${elapsed} ms (total budget ${RELAXED_BUDGETS.totalBudgetMs} ms in this suite)`,
      );
      assert.equal(res.items.length, 20);
      assert.ok(res.degradations.includes("rank_fallback"), res.degradations.join(","));
      assert.equal(res.modelVersions.rank, "fallback:prerank_score");
      // After a few such failures in a row rank's circuit breaker opens: the gateway stops
      // spending rank's budget on every request and takes the fallback at once.
      let skipped: { ms: number; degradations: string[] } | undefined;
      for (let i = 0; i < 10 && !skipped; i++) {
        const t0 = Date.now();
        const r = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 5_000 });
        if (r.degradations.includes("circuit_open:rank"))
          skipped = { ms: Date.now() - t0, degradations: r.degradations };
      }
      assert.ok(skipped, "rank's breaker opened");
      assert.ok(skipped.degradations.includes("rank_fallback"));
      assert.ok(
        skipped.ms < RELAXED_BUDGETS.rank.budgetMs,
        `answered in ${skipped.ms} ms, less than rank's budget (${RELAXED_BUDGETS.rank.budgetMs} ms)`,
      );
    } finally {
      stack.pause("rank", false);
    }
  });

  it("a hung prerank or rerank: the executor takes that stage's fail-open policy", async () => {
    // rank's breaker, opened by the test before, closes after its cooldown and a good probe
    const healthy = async () => {
      for (let i = 0; i < 40; i++) {
        const res = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 5_000 });
        if (!res.degradations.some((d) => d.endsWith("_fallback") || d.startsWith("circuit_open"))) return;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.fail("the funnel did not recover from the test before");
    };
    for (const step of STAGE_STEPS.filter((s) => s.id === "prerank" || s.id === "rerank")) {
      await healthy();
      stack.pause(step.id, true);
      try {
        const res = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 5_000 });
        assert.equal(res.items.length, 20, step.id);
        assert.deepEqual(
          res.degradations.filter((d) => d.endsWith("_fallback")),
          [step.degradation],
          `${step.id}: ${res.degradations.join(",")}`,
        );
        assert.equal(res.modelVersions[step.id], step.fallbackVersion);
        const ids = res.items.map((i) => i.itemId);
        assert.equal(new Set(ids).size, 20);
        for (const id of ids) assert.ok(!seen.get("15")!.has(id), `${step.id}: ${id} was seen`);
      } finally {
        stack.pause(step.id, false);
      }
    }
  });

  it("keeps answering when rank dies, and when recall dies too", async () => {
    await stack.stopService("rank", "SIGKILL");
    const withoutRank = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 2_000 });
    assert.equal(withoutRank.items.length, 20);
    assert.ok(withoutRank.degradations.includes("rank_fallback"));
    assert.ok(!withoutRank.degradations.includes("recall_fallback"));

    await stack.stopService("recall", "SIGKILL");
    const withoutRecall = await recommend.recommend(
      { userId: "15", count: 20, excludeItemIds: ["1"] },
      { timeoutMs: 2_000 },
    );
    assert.equal(withoutRecall.items.length, 20);
    assert.ok(withoutRecall.degradations.includes("recall_fallback"));
    assert.ok(withoutRecall.degradations.includes("rank_fallback"));
    const ids = withoutRecall.items.map((i) => i.itemId);
    assert.equal(new Set(ids).size, 20);
    for (const id of ids)
      assert.ok(!seen.get("15")!.has(id) && id !== "1", "filters still apply in the fallback");

    // Prerank down too: the 300 most popular items are all the stages have left. The heaviest
    // user has seen many of them, and each page excludes the pages before it: the funnel
    // runs short, and the answer is still `count` unseen, unexcluded items, filled from popular.
    await stack.stopService("prerank", "SIGKILL");
    const [heavy, heavySeen] = [...seen].reduce((a, b) => (b[1].size > a[1].size ? b : a));
    const shown: string[] = [];
    let filled = false;
    for (let page = 0; page < 3; page++) {
      const res = await recommend.recommend(
        { userId: heavy, count: 100, excludeItemIds: shown },
        { timeoutMs: 2_000 },
      );
      const pageIds = res.items.map((i) => i.itemId);
      assert.equal(pageIds.length, 100, `page ${page}: ${res.degradations.join(",")}`);
      assert.equal(new Set([...shown, ...pageIds]).size, shown.length + 100, "no item twice across pages");
      for (const id of pageIds) assert.ok(!heavySeen.has(id), `${id} was seen by ${heavy}`);
      filled ||= res.degradations.includes("short_result_popular_fill");
      shown.push(...pageIds);
    }
    assert.ok(filled, "the last pages were short before the fill");

    const metrics = await (await fetch(`http://127.0.0.1:${stack.metricsPort("gateway")}/metrics`)).text();
    assert.match(metrics, /recsys_degradations_total\{kind="rank_fallback",service="gateway"\} [1-9]/);
    assert.match(metrics, /recsys_degradations_total\{kind="recall_fallback",service="gateway"\} [1-9]/);

    // Restarted stages are used again.
    await Promise.all(["rank", "recall", "prerank"].map((s) => stack.startService(s as "rank")));
    let healed = false;
    for (let i = 0; i < 60 && !healed; i++) {
      const res = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 2_000 });
      healed = !res.degradations.some((d) => d.endsWith("_fallback"));
      if (!healed) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(healed, "the funnel recovers once the stages are back");
  });
});
