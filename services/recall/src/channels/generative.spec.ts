/**
 * The generative channel on the real quick-profile version in
 * RECSYS_TEST_MODEL_STORE (default var/test-models; `bash
 * scripts/test-models.sh` trains it): the serving beam search reproduces the
 * trainer's own top items for its probe users, a new item gets a semantic ID
 * from its content vector as the trainer gives one to a cold item, that item
 * can then be generated, and a damaged version is refused.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  createLogger,
  currentVersion,
  EventType,
  loadContentEmbeddings,
  ModelWatcher,
  OnnxPool,
  readVerifiedManifest,
  versionDir,
} from "@recsys/shared";
import {
  addItem,
  type GenerativeModel,
  generate,
  loadGenerativeModel,
  quantise,
} from "../models/generative-model.js";
import { best } from "../models/generative-search.js";
import { ModelValidationError } from "../models/sequence-model.js";
import { GenerativeCandidateSource } from "./generative.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");

describe("generative channel (real quick-profile version)", { concurrency: false }, () => {
  let pool: OnnxPool;
  let version: string;
  let dir: string;
  let model: GenerativeModel;
  const manifest = () => readVerifiedManifest(STORE, "generative", version);
  const load = () => loadGenerativeModel(dir, manifest(), pool);

  before(async () => {
    const current = currentVersion(STORE, "generative");
    assert.ok(current, `no generative version in ${STORE}: run bash scripts/test-models.sh`);
    version = current;
    dir = versionDir(STORE, "generative", version);
    pool = new OnnxPool({ threads: 1, intraOpNumThreads: 1, maxSessions: 4 });
    model = await load();
  });
  after(() => pool.close());

  it("reproduces the trainer's beam search for its probe users", async () => {
    assert.ok(model.probes.length > 0, "the manifest lists probe users");
    for (const probe of model.probes) {
      const got = await generate(model, pool, probe.history, 20);
      assert.equal(got.length, probe.top.length);
      // equal log-probabilities may swap places between PyTorch and ONNX Runtime: compare the
      // ranks where the trainer's scores are apart, and the log-probabilities everywhere
      for (let i = 0; i < got.length; i++) {
        assert.ok(Math.abs(got[i]!.logProb - probe.log_probs[i]!) < 1e-3, `log-prob ${i}`);
        const tied = probe.log_probs.filter((p) => Math.abs(p - probe.log_probs[i]!) < 1e-3).length > 1;
        if (!tied) assert.equal(got[i]!.itemId, probe.top[i], `item ${i}`);
      }
      const history = new Set(probe.history);
      assert.ok(
        got.every((g) => !history.has(g.itemId)),
        "no history item comes back",
      );
    }
  });

  it("gives a cold item the trainer's semantic ID from its content alone", () => {
    const content = loadContentEmbeddings(STORE);
    const row = new Map(content.itemIds.map((id, i) => [id, i]));
    assert.ok(model.quantiserProbes.length > 0, "the manifest lists cold items");
    let same = 0;
    for (const probe of model.quantiserProbes) {
      const r = row.get(probe.item_id)!;
      const codes = quantise(model, content.vectors.subarray(r * content.dim, (r + 1) * content.dim));
      if (Array.from(codes).join() === probe.codes.join()) same++;
    }
    // float32 (here) against float64 (the trainer) may part a near tie
    assert.ok(same >= 0.9 * model.quantiserProbes.length, `${same}/${model.quantiserProbes.length} equal`);
  });

  it("a new item gets a free path from its content and can be generated", async () => {
    const fresh = await load();
    const content = loadContentEmbeddings(STORE);
    const vector = content.vectors.subarray(0, content.dim);
    const codes = addItem(fresh, "new-item-1", vector);
    assert.ok(codes, "the new item has a path");
    assert.equal(addItem(fresh, "new-item-1", vector), codes, "a second upsert keeps it");
    const other = addItem(fresh, "new-item-2", vector);
    assert.ok(other && other.join() !== codes.join(), "the same content gets the next free slot");
    assert.equal(fresh.codeOf.has("new-item-1"), true);
    // a beam as wide as the catalogue reaches every path: the new items are among the results
    const everything = await generate(fresh, pool, [content.itemIds[1]!], fresh.codeOf.size);
    const ids = new Set(everything.map((g) => g.itemId));
    assert.ok(ids.has("new-item-1") && ids.has("new-item-2"));
    assert.equal(model.codeOf.has("new-item-1"), false, "the loaded model is a separate copy");
  });

  it("serves as a channel: unseen items, best first, and upserts reach new versions", async () => {
    const watcher = new ModelWatcher<GenerativeModel>({
      store: STORE,
      model: "generative",
      logger: createLogger("generative-spec", "silent"),
      pollMs: 60_000,
      load: (d, m) => loadGenerativeModel(d, m, pool),
    });
    await watcher.start();
    const source = new GenerativeCandidateSource(watcher, pool, undefined, 50);
    const history = model.probes[0]!.history.map((itemId, i) => ({
      itemId,
      timestampMs: 1_000 + i,
      type: EventType.RATING,
      value: 4,
    }));
    const ctx = {
      requestId: "r",
      scene: "",
      query: "",
      deadline: Date.now() + 5_000,
      user: { userId: "u", known: true, blockedItemIds: [], earlierSeenItemIds: [], history },
    };
    const got = await source.fetch(ctx, 500);
    assert.equal(got.length, 50, "capped at the beam limit");
    const direct = await generate(model, pool, model.probes[0]!.history, 50);
    assert.deepEqual(
      got.map((c) => c.itemId),
      direct.map((g) => g.itemId),
    );
    assert.ok(got.every((c, i) => i === 0 || c.score <= got[i - 1]!.score));
    assert.equal(got[0]!.score, 1);
    assert.ok(
      got.some((c) => c.reasonIndex >= 0),
      "a reason points into the history",
    );
    // an item upserted before the model was applied is addressed when it is
    source.upsert("upserted-1", loadContentEmbeddings(STORE).vectors.subarray(0, model.quantiser.contentDim));
    await source.fetch(ctx, 10);
    assert.ok(watcher.current()!.value.codeOf.has("upserted-1"));
    assert.deepEqual(await source.fetch({ ...ctx, user: { ...ctx.user, history: [] } }, 10), []);
    watcher.stop();
  });

  it("refuses a version with a damaged code table, naming the file", async () => {
    const copy = join(mkdtempSync(join(tmpdir(), "generative-spec-")), "v");
    cpSync(dir, copy, { recursive: true });
    writeFileSync(join(copy, "codes.tsv"), "item_id\tc1\tc2\tc3\tc4\n1\t0\t0\t0\n");
    await assert.rejects(
      loadGenerativeModel(copy, manifest(), pool),
      (err: unknown) => err instanceof ModelValidationError && /codes.tsv line 2/.test(err.message),
    );
  });
});

describe("beam selection", () => {
  it("keeps the best `width` candidates, best first, ties to the earlier candidate", () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (const [n, width] of [
      [3200, 100],
      [50, 100],
      [1000, 1],
      [500, 500],
    ] as const) {
      // few distinct values, so ties are common
      const scores = Float64Array.from({ length: n }, () => Math.round(rand() * 40) / 4);
      const expected = Array.from({ length: n }, (_, i) => i)
        .sort((a, b) => scores[b]! - scores[a]! || a - b)
        .slice(0, width);
      assert.deepEqual([...best(scores, n, width)], expected, `n=${n} width=${width}`);
    }
  });
});
