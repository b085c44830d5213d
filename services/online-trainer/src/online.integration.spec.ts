/**
 * The real Python trainer's online update on a shard this service builds.
 * Slow (imports torch, fine-tunes a model): runs only with
 * RECSYS_TEST_ONLINE_PYTHON set ("1" for <repo>/.venv/bin/python, or an
 * interpreter path). Needs a model store with the model and the content
 * vectors (RECSYS_TEST_MODEL_STORE, default var/test-models: scripts/test-models.sh);
 * the test works on a copy of it.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { currentVersion, loadInteractions } from "@recsys/shared";
import { pythonCommand, REPO_ROOT } from "./config.js";
import { UserHistories } from "./history.js";
import { buildShard, type ShardSample, writeShard } from "./shard.js";
import { DECISIONS, runOnlineUpdate } from "./update.js";

const flag = process.env.RECSYS_TEST_ONLINE_PYTHON;
const models = (process.env.RECSYS_TEST_ONLINE_MODELS ?? "em3,prerank,kuaiformer").split(",").filter(Boolean);
const store = process.env.RECSYS_TEST_MODEL_STORE ?? join(REPO_ROOT, "var", "test-models");
const dataDir = process.env.RECSYS_DATA_DIR ?? join(REPO_ROOT, "data", "ml-latest-small");

describe("online update with the Python trainer", {
  skip: !flag ? "RECSYS_TEST_ONLINE_PYTHON not set" : false,
}, () => {
  for (const model of models)
    it(`fine-tunes the serving ${model} version on a shard and answers the contract's JSON`, {
      timeout: 600_000,
    }, async () => {
      assert.ok(
        currentVersion(store, model),
        `no ${model} in ${store} (bash scripts/test-models.sh trains it)`,
      );
      const tmp = mkdtempSync(join(tmpdir(), "online-python-"));
      const copy = join(tmp, "models");
      for (const m of new Set([model, "content"]))
        if (existsSync(join(store, m))) cpSync(join(store, m), join(copy, m), { recursive: true });
      const parent = currentVersion(copy, model);

      // Samples from the dataset's newest interactions: each user's last few
      // items as positives, and as many other items shown at the same time as negatives.
      const interactions = await loadInteractions(dataDir);
      const histories = new UserHistories();
      histories.addBase(interactions);
      const byUser = new Map<string, typeof interactions>();
      for (const r of interactions) {
        let list = byUser.get(r.userId);
        if (!list) byUser.set(r.userId, (list = []));
        list.push(r);
      }
      const allItems = [...new Set(interactions.map((r) => r.itemId))];
      const samples: ShardSample[] = [];
      let k = 0;
      for (const [userId, rows] of [...byUser].slice(0, 80)) {
        for (const r of rows.slice(-3)) {
          samples.push({
            userId,
            itemId: r.itemId,
            timestampMs: r.timestampMs,
            labels: { click: 1, like: r.rating >= 4 ? 1 : 0 },
          });
          const other = allItems[(k++ * 7919) % allItems.length]!;
          samples.push({ userId, itemId: other, timestampMs: r.timestampMs, labels: { click: 0, like: 0 } });
        }
      }
      const shard = writeShard(tmp, "shard-test.jsonl", buildShard(samples, histories, 100));

      const flagIsPath = flag !== "1" && flag !== "true";
      const python = {
        ...pythonCommand({ RECSYS_ONLINE_PYTHON: flagIsPath ? flag! : "", RECSYS_ONLINE_PYTHONPATH: "" }),
      };
      const stderr: string[] = [];
      const result = await runOnlineUpdate(
        {
          ...python,
          store: copy,
          data: dataDir,
          tolerance: 0.05,
          timeoutMs: 540_000,
          onStderrLine: (l) => stderr.push(l),
        },
        model,
        shard,
      );
      writeFileSync(join(tmp, "result.json"), JSON.stringify(result.raw, null, 1));
      assert.ok(DECISIONS.includes(result.decision), JSON.stringify(result.raw));
      // The shard has hundreds of samples of both classes: the trainer must have trained and
      // judged the result on the holdout, not skipped it.
      assert.ok(["published", "rejected"].includes(result.decision), JSON.stringify(result.raw));
      assert.ok(result.raw.holdout, "a verdict comes with the holdout metrics");
      assert.equal(result.parentVersion, parent);
      assert.equal(typeof result.seconds, "number");
      if (result.decision === "published") {
        assert.ok(result.version && result.version !== parent);
        assert.equal(currentVersion(copy, model), result.version);
      } else {
        assert.equal(currentVersion(copy, model), parent);
      }
      process.stderr.write(
        `[online.integration] ${model}: ${result.decision} (${result.reason}) in ${result.seconds}s; ${tmp}/result.json\n`,
      );
    });
});
