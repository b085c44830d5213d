/**
 * The prerank item tower runs once per item and model version
 * (ItemVectorTable), on the real quick-profile version of
 * RECSYS_TEST_MODEL_STORE: a request's item vectors are the ones the tower
 * gives for that item now, also after the item was updated, and for items
 * that arrived after the version loaded.
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ContentTable,
  checkRankingManifest,
  currentVersion,
  type ItemCatalog,
  loadCatalog,
  loadRankingModel,
  OnnxPool,
  PRERANK_SPEC,
  type RankingModel,
  readVerifiedManifest,
  versionDir,
} from "@recsys/shared";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
const DATA = join(ROOT, "data", "ml-latest-small");

describe("prerank item vectors (real prerank version)", { concurrency: false }, () => {
  let pool: OnnxPool;
  let catalog: ItemCatalog;
  let content: ContentTable;
  let model: RankingModel;
  let itemIds: string[];

  before(async () => {
    const version = currentVersion(STORE, "prerank");
    assert.ok(version, `no prerank version in ${STORE}: run bash scripts/test-models.sh`);
    ({ catalog } = await loadCatalog(DATA));
    content = ContentTable.load(STORE);
    pool = new OnnxPool({ threads: 1, maxSessions: 4 });
    model = await loadRankingModel(
      PRERANK_SPEC,
      versionDir(STORE, "prerank", version),
      readVerifiedManifest(STORE, "prerank", version),
      pool,
      { catalog, content },
    );
    itemIds = [...catalog.items.keys()];
  });

  after(() => pool?.close());

  /** The tower's answer for `ids` computed afresh, in a table of a second load of the version. */
  const fresh = async (ids: string[]) => {
    const version = currentVersion(STORE, "prerank")!;
    const other = await loadRankingModel(
      PRERANK_SPEC,
      versionDir(STORE, "prerank", version),
      readVerifiedManifest(STORE, "prerank", version),
      pool,
      { catalog, content },
    );
    return (await other.itemVectors!.gather(ids)).data;
  };

  it("a version loads with every catalogue item's vector; a gather is the tower's rows in order", async () => {
    const table = model.itemVectors!;
    assert.ok(table, "prerank has an item tower");
    const ids = [itemIds[5]!, itemIds[0]!, itemIds[5]!];
    const got = await table.gather(ids);
    assert.equal(got.dim, table.dim);
    assert.equal(got.data.length, 3 * table.dim);
    const row = (k: number) => [...got.data.subarray(k * got.dim, (k + 1) * got.dim)];
    assert.deepEqual(row(0), row(2));
    assert.notDeepEqual(row(0), row(1));
    assert.ok(row(0).some((v) => v !== 0));
  });

  it("an updated item gets the tower's vector of its new features; a new item one of its own", async () => {
    const table = model.itemVectors!;
    const id = itemIds[10]!;
    const before = [...(await table.gather([id])).data];
    const record = catalog.items.get(id)!;
    catalog.upsert({ ...record, genres: ["Documentary"], year: 1921 });
    const after = [...(await table.gather([id])).data];
    assert.notDeepEqual(after, before, "the stale vector was recomputed");
    assert.deepEqual(after, [...(await fresh([id]))], "the same as a fresh load computes");

    catalog.upsert({ itemId: "tower-new", title: "New", genres: ["Comedy"], year: 2026 });
    const vectors = await table.gather(["tower-new", "never-heard-of"]);
    assert.equal(vectors.oov, 2, "neither is in the model's vocabulary");
    assert.deepEqual([...vectors.data.subarray(0, table.dim)], [...(await fresh(["tower-new"]))]);
  });

  it("a version without the item tower (an older single-graph export) is refused with the way out", () => {
    const version = currentVersion(STORE, "prerank")!;
    const manifest = readVerifiedManifest(STORE, "prerank", version);
    assert.equal(checkRankingManifest(PRERANK_SPEC, manifest, content).itemVecDim, model.itemVectors!.dim);
    const { item_tower: _, ...old } = manifest;
    assert.throws(
      () => checkRankingManifest(PRERANK_SPEC, old as typeof manifest, content),
      /reexport --model prerank/,
    );
    const wrong = structuredClone(manifest) as typeof manifest & {
      item_tower: { outputs: { shape: unknown[] }[] };
    };
    wrong.item_tower.outputs[0]!.shape = ["candidates", 7];
    assert.throws(() => checkRankingManifest(PRERANK_SPEC, wrong, content), /item_tower: output item_vec/);
  });
});
