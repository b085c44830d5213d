/**
 * The em3 model as the rank service loads and serves it, on the real
 * quick-profile version in RECSYS_TEST_MODEL_STORE (default var/test-models;
 * `bash scripts/test-models.sh` trains it): validation rejects mismatched,
 * damaged and corrupt versions while the serving one stays; the scorer
 * falls back to the interim scorer, with a degradation, when the model
 * gives non-finite scores, cannot take the request or has no version.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ContentTable,
  copyVersion,
  createLogger,
  currentVersion,
  EM3_SPEC,
  EventType,
  type ItemCatalog,
  loadCatalog,
  loadRankingModel,
  Metrics,
  ModelWatcher,
  newCandidate,
  OnnxPool,
  type RankingModel,
  readVerifiedManifest,
  type StageContext,
  versionDir,
} from "@recsys/shared";
import { em3Scorer } from "./em3.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
const DATA = join(ROOT, "data", "ml-latest-small");
const INTERIM = "fallback:interim-affinity-quality-v1";

describe("em3 model (real quick-profile version)", { concurrency: false }, () => {
  let catalog: ItemCatalog;
  let content: ContentTable;
  let pool: OnnxPool;
  let version: string;
  let model: RankingModel;
  let ctx: StageContext;
  const logger = createLogger("em3-spec", "silent");

  before(async () => {
    const current = currentVersion(STORE, "em3");
    assert.ok(current, `no em3 version in ${STORE}: run bash scripts/test-models.sh`);
    version = current;
    let interactions: Awaited<ReturnType<typeof loadCatalog>>["interactions"];
    ({ catalog, interactions } = await loadCatalog(DATA));
    content = ContentTable.load(STORE);
    pool = new OnnxPool({ threads: 1, intraOpNumThreads: 1 });
    model = await loadRankingModel(
      EM3_SPEC,
      versionDir(STORE, "em3", version),
      readVerifiedManifest(STORE, "em3", version),
      pool,
      { catalog, content },
    );
    const history = interactions
      .filter((r) => r.userId === "15")
      .map((r) => ({
        itemId: r.itemId,
        timestampMs: r.timestampMs,
        type: EventType.RATING,
        value: r.rating,
      }));
    ctx = {
      requestId: "spec",
      scene: "",
      query: "",
      deadline: Number.POSITIVE_INFINITY,
      user: { userId: "15", known: true, blockedItemIds: [], earlierSeenItemIds: [], history },
    };
  });

  after(async () => {
    await pool?.close();
  });

  const candidates = (n: number, extra: string[] = []) =>
    [...[...catalog.items.keys()].slice(0, n), ...extra].map((id) => newCandidate(id, { prerankScore: 0.5 }));

  it("loads the CURRENT version: signature, vocabularies, probe batch on CPU", () => {
    assert.equal(model.version, version);
    assert.equal(model.provider, "cpu");
    assert.equal(model.contentDim, content.dim);
    assert.ok(model.itemVocab.size > 1000 && model.userVocab.size > 100 && model.genreVocab.size > 5);
    assert.ok(model.features.size >= catalog.size);
  });

  it("scores every candidate in one run: click and like in (0, 1), score = click, order kept", async () => {
    const metrics = new Metrics("rank");
    const scorer = em3Scorer({ catalog, current: () => model, pool, metrics });
    const input = candidates(300, ["never-seen-item"]);
    const ids = input.map((c) => c.itemId);
    const out = await scorer.score(ctx, input);
    assert.equal(out.version, version);
    assert.deepEqual(out.degradations, []);
    assert.deepEqual(
      out.candidates.map((c) => c.itemId),
      ids,
    );
    for (const c of out.candidates) {
      const { click, like } = c.taskScores;
      assert.ok(click! > 0 && click! < 1 && like! > 0 && like! < 1, `${c.itemId}: ${click} ${like}`);
      assert.equal(c.score, click);
    }
    const oov = await metrics.registry.getSingleMetricAsString("recsys_oov_candidates_total");
    assert.match(oov, /recsys_oov_candidates_total\{model="em3",service="rank"\} [1-9]/);
  });

  it("non-finite outputs: the interim scorer answers, with degradation rank_nonfinite_output", async () => {
    // A finite but absurd content vector (a corrupt item update) overflows the model's layers.
    const poisoned = new ContentTable(content.dim, content.version, content.encoderSha);
    const huge = new Array<number>(content.dim).fill(3e38);
    assert.equal(poisoned.upsert("poisoned-item", huge, `x@${content.encoderSha.slice(0, 16)}`), "stored");
    const dir = versionDir(STORE, "em3", version);
    const poisonedModel = await loadRankingModel(
      EM3_SPEC,
      dir,
      readVerifiedManifest(STORE, "em3", version),
      pool,
      {
        catalog,
        content: poisoned,
      },
    );
    const metrics = new Metrics("rank");
    const scorer = em3Scorer({ catalog, current: () => poisonedModel, pool, metrics, logger });
    const out = await scorer.score(ctx, candidates(20, ["poisoned-item"]));
    assert.equal(out.version, INTERIM);
    assert.deepEqual(out.degradations, ["rank_nonfinite_output"]);
    assert.equal(out.candidates.length, 21);
    for (const c of out.candidates)
      assert.ok(Number.isFinite(c.taskScores.click) && Number.isFinite(c.score));
    const degraded = await metrics.registry.getSingleMetricAsString("recsys_degradations_total");
    assert.match(degraded, /kind="rank_nonfinite_output",service="rank"\} 1/);
    // A catalogue item with such a vector does not keep a version from loading (its vector is left
    // out when the item tower runs over the catalogue); requests that hold it fall back the same way.
    const catalogItem = [...catalog.items.keys()].at(-1)!; // not among the probe batch's items
    assert.equal(poisoned.upsert(catalogItem, huge, `x@${content.encoderSha.slice(0, 16)}`), "stored");
    const loaded = await loadRankingModel(EM3_SPEC, dir, readVerifiedManifest(STORE, "em3", version), pool, {
      catalog,
      content: poisoned,
    });
    assert.ok(loaded.itemVectors!.nonFiniteItems >= 1);
    const again = await em3Scorer({ catalog, current: () => loaded, pool, logger }).score(ctx, [
      newCandidate(catalogItem),
    ]);
    assert.deepEqual(again.degradations, ["rank_nonfinite_output"]);
    const clean = await em3Scorer({ catalog, current: () => loaded, pool, logger }).score(ctx, candidates(5));
    assert.deepEqual(clean.degradations, [], "the other items score as before");
  });

  it("a full queue, a run that fails or a deadline too close: the interim scorer answers, degraded", async () => {
    const busy = new OnnxPool({ threads: 1, intraOpNumThreads: 1, maxQueue: 1 });
    try {
      const scorer = em3Scorer({ catalog, current: () => model, pool: busy, logger });
      const outs = await Promise.all(Array.from({ length: 6 }, () => scorer.score(ctx, candidates(300))));
      const refused = outs.filter((o) => o.degradations.includes("rank_model_error"));
      assert.ok(refused.length > 0, "some requests found the queue full");
      for (const o of refused) assert.equal(o.version, INTERIM);
      assert.ok(outs.some((o) => o.version === version));
    } finally {
      await busy.close();
    }
    const broken = { ...model, modelPath: join(tmpdir(), "no-such-model.onnx") };
    const failing = await em3Scorer({ catalog, current: () => broken, pool, logger }).score(
      ctx,
      candidates(5),
    );
    assert.deepEqual([failing.version, failing.degradations], [INTERIM, ["rank_model_error"]]);
    const late = await em3Scorer({ catalog, current: () => model, pool, deadlineMarginMs: 5, logger }).score(
      { ...ctx, deadline: Date.now() + 2 },
      candidates(5),
    );
    assert.deepEqual([late.version, late.degradations], [INTERIM, ["rank_model_timeout"]]);
    const none = await em3Scorer({ catalog, current: () => undefined, pool }).score(ctx, candidates(5));
    assert.deepEqual([none.version, none.degradations], [INTERIM, ["rank_no_model"]]);
    assert.ok(none.candidates.every((c) => c.taskScores.click! > 0 && c.taskScores.like! > 0));
  });

  describe("validation through ModelWatcher: a bad version is rejected, the serving one stays", () => {
    const store = mkdtempSync(join(tmpdir(), "recsys-em3-spec-"));
    let watcher: ModelWatcher<RankingModel>;
    let metrics: Metrics;

    before(async () => {
      copyVersion(STORE, store, "em3", version);
      metrics = new Metrics("rank");
      watcher = new ModelWatcher({
        store,
        model: "em3",
        logger,
        metrics,
        load: (dir, manifest) => loadRankingModel(EM3_SPEC, dir, manifest, pool, { catalog, content }),
      });
      await watcher.check();
      assert.equal(watcher.current()?.version, version);
    });

    /** Publishes a changed copy of the good version; the watcher must reject it for `reason`. */
    const rejects = async (
      name: string,
      reason: RegExp,
      change: (dir: string, manifest: Record<string, unknown>) => void,
      republish = true,
    ) => {
      const bad = `29990101T000000Z-${name}`;
      if (republish) copyVersion(STORE, store, "em3", bad, change, version);
      else {
        copyVersion(STORE, store, "em3", bad, undefined, version);
        change(versionDir(store, "em3", bad), {});
      }
      await watcher.check();
      assert.equal(watcher.current()?.version, version, `${name}: still serving the good version`);
      await assert.rejects(
        (async () =>
          loadRankingModel(
            EM3_SPEC,
            versionDir(store, "em3", bad),
            readVerifiedManifest(store, "em3", bad),
            pool,
            { catalog, content },
          ))(),
        reason,
      );
      return metrics.registry.getSingleMetricAsString("recsys_model_loads_total");
    };

    it("a signature that does not match the contract (input dtype, shape, an extra input, an output)", async () => {
      type Sig = {
        inputs: Array<{ name: string; dtype: string; shape: unknown[] }>;
        outputs: Array<{ name: string }>;
      };
      await rejects("dtype", /input hist_item_idx is int32/, (_d, m) => {
        (m.signature as Sig).inputs.find((i) => i.name === "hist_item_idx")!.dtype = "int32";
      });
      await rejects("hist-len", /input hist_item_idx is int64 \[1,7\]/, (_d, m) => {
        (m.signature as Sig).inputs.find((i) => i.name === "hist_item_idx")!.shape = [1, 7];
      });
      await rejects("extra-input", /unexpected inputs user_age/, (_d, m) => {
        (m.signature as Sig).inputs.push({ name: "user_age", dtype: "int64", shape: [1] });
      });
      await rejects("output", /output like must be float32/, (_d, m) => {
        (m.signature as Sig).outputs = (m.signature as Sig).outputs.filter((o) => o.name !== "like");
      });
      await rejects("tasks", /manifest.tasks must be/, (_d, m) => {
        m.tasks = ["click"];
      });
      // cand_recall's width must be the number of recall features the manifest names
      await rejects("recall-features", /input cand_recall is float32/, (_d, m) => {
        m.recall_features = [...(m.recall_features as string[]), "channel:somewhere"];
      });
      await rejects("recall-feature-name", /manifest.recall_features must be/, (_d, m) => {
        m.recall_features = ["recall_rank"];
      });
      const loads = await rejects("content-dim", /content_dim is 128/, (_d, m) => {
        m.content_dim = 128;
      });
      assert.match(loads, /model="em3",outcome="rejected",service="rank"\} 8/);
    });

    it("the prerank model is not an em3 model", async () => {
      const prerank = currentVersion(STORE, "prerank");
      assert.ok(prerank, `no prerank version in ${STORE}`);
      await assert.rejects(
        (async () =>
          loadRankingModel(
            EM3_SPEC,
            versionDir(STORE, "prerank", prerank),
            readVerifiedManifest(STORE, "prerank", prerank),
            pool,
            { catalog, content },
          ))(),
        /manifest.tasks must be|input hist_genres missing/,
      );
    });

    it("a corrupt model file (checksums right) fails the probe batch", async () => {
      await rejects("corrupt-onnx", /probe batch failed/, (dir) => {
        const path = join(dir, "model.onnx");
        truncateSync(path, Math.floor(readFileSync(path).length / 3));
      });
    });

    it("a damaged file (checksum mismatch) and a bad vocabulary are rejected", async () => {
      await rejects(
        "damaged",
        /item_vocab.tsv checksum mismatch/,
        (dir) => {
          const path = join(dir, "item_vocab.tsv");
          writeFileSync(path, `${readFileSync(path, "utf8")}99999999\textra\n`);
        },
        false,
      );
      await rejects("bad-vocab", /genre_vocab.tsv line 2: bad entry/, (dir) => {
        writeFileSync(join(dir, "genre_vocab.tsv"), "index\tgenre\n0\tAction\n");
      });
    });
  });
});
