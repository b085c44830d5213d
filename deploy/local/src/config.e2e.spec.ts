/**
 * One configuration, honoured everywhere: a stack started on a data directory
 * and a model store that are not the defaults serves exactly those (the bug
 * was services that read data/ml-latest-small and var/models whatever the
 * launcher was given). The data directory here is a copy of the dataset in
 * which every user id is renamed, so a history can only come from it; the
 * store is the test models', whose CURRENT versions must be the ones named
 * in model_versions. Needs the test models (`npm test` builds them).
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ClientOf, createClient, currentVersion } from "@recsys/shared";
import { RecommendService } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { LocalStack } from "./stack.js";
import { relaxedBudgetEnv } from "./testing.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const BASE_PORT = Number(process.env.RECSYS_CONFIG_E2E_BASE_PORT ?? 56751);
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
const SOURCE = resolve(ROOT, "data/ml-latest-small");

describe("the stack serves the data directory and model store it is given", { concurrency: false }, () => {
  let stack: LocalStack;
  let recommend: ClientOf<typeof RecommendService>;

  before(async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "recsys-config-"));
    const data = join(stateDir, "renamed-users");
    mkdirSync(data);
    copyFileSync(join(SOURCE, "items.tsv"), join(data, "items.tsv"));
    copyFileSync(join(SOURCE, "manifest.json"), join(data, "manifest.json"));
    const lines = readFileSync(join(SOURCE, "interactions.tsv"), "utf8").split("\n");
    writeFileSync(
      join(data, "interactions.tsv"),
      lines.map((line, i) => (i === 0 || !line ? line : `renamed-${line}`)).join("\n"),
    );
    stack = await LocalStack.start({
      rootDir: ROOT,
      basePort: BASE_PORT,
      dataDir: data,
      modelStore: STORE,
      logDir: join(stateDir, "log"),
      stateDir,
      serviceEnv: relaxedBudgetEnv(stateDir),
      catalog: false,
      layout: "colocated",
    });
    recommend = createClient(RecommendService, stack.gatewayTarget);
  });

  after(async () => {
    recommend?.close();
    await stack?.stopAll();
  });

  it("knows the users of the given data directory and not those of the default one", async () => {
    const known = await recommend.recommend({ userId: "renamed-15", count: 10 }, { timeoutMs: 10_000 });
    assert.equal(known.items.length, 10);
    assert.ok(!known.degradations.includes("unknown_user"), known.degradations.join(","));
    const other = await recommend.recommend({ userId: "15", count: 10 }, { timeoutMs: 10_000 });
    assert.ok(other.degradations.includes("unknown_user"), "user 15 exists only in the default dataset");
  });

  it("serves the CURRENT versions of the given model store", async () => {
    const res = await recommend.recommend({ userId: "renamed-15", count: 10 }, { timeoutMs: 10_000 });
    const served = res.modelVersions;
    for (const [key, model] of [
      ["recall.kuaiformer", "kuaiformer"],
      ["recall.generative", "generative"],
      ["recall.swing", "swing"],
      ["prerank", "prerank"],
      ["rank", "em3"],
    ] as const) {
      assert.equal(served[key], currentVersion(STORE, model), `${key}: ${JSON.stringify(served)}`);
    }
  });
});
