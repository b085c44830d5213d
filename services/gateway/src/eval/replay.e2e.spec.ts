/**
 * The recall replay that makes the rank models' samples (replay-cli.ts,
 * docs/ranking.md): run on the test model store, it asks the live recall
 * service for the moments before each user's held-out last event, never that
 * event itself, with the history strictly before the moment (nothing the
 * user had seen by then comes back), and the data it writes for the replay's
 * KuaiFormer lacks each user's last `contexts + 1` events.
 * Needs var/test-models (RECSYS_TEST_MODEL_STORE); `npm test` trains it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { groupByUser, loadInteractions } from "@recsys/shared";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const STORE = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
const DATA = resolve(ROOT, process.env.RECSYS_DATA_DIR ?? "data/ml-latest-small");
const CLI = join(ROOT, "services/gateway/dist/eval/replay-cli.js");
const BASE_PORT = process.env.RECSYS_E2E_REPLAY_BASE_PORT ?? "58751";

describe("recall replay for the rank models' samples", () => {
  const dir = mkdtempSync(join(tmpdir(), "recsys-replay-spec-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const contexts = 2;
  const users = 6;

  it("replays the moments before the held-out event, with the history before each moment", async () => {
    const out = join(dir, "replay.tsv");
    execFileSync(
      process.execPath,
      [
        CLI,
        ...["--data", DATA, "--store", STORE, "--contexts", String(contexts), "--users", String(users)],
        ...["--out", out, "--base-port", BASE_PORT],
      ],
      { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env }, cwd: ROOT, timeout: 180_000 },
    );
    const [headerLine, ...lines] = readFileSync(out, "utf8").trimEnd().split("\n");
    const header = JSON.parse(headerLine!) as { channels: string[]; moments: number };
    assert.ok(header.channels.includes("kuaiformer") && header.channels.includes("swing"), headerLine);
    assert.equal(lines.length, users * contexts);
    assert.equal(header.moments, lines.length);
    const byUser = new Map([...groupByUser(await loadInteractions(DATA))]);
    for (const line of lines) {
      const [userId, ts, itemId, rating, ids, masks, scores] = line.split("\t");
      const rows = byUser.get(userId!)!;
      // the moment is one of the `contexts` events before the last; the last one is never read
      const at = rows.findIndex((r) => r.itemId === itemId && r.timestampMs === Number(ts));
      assert.ok(at >= rows.length - 1 - contexts && at < rows.length - 1, `${userId} ${itemId} at ${at}`);
      assert.equal(Number(rating), rows[at]!.rating);
      const cands = ids!.split(",");
      assert.ok(cands.length > 100, `${cands.length} candidates`);
      assert.equal(masks!.split(",").length, cands.length);
      assert.ok(masks!.split(",").every((m) => Number(m) > 0 && Number(m) < 2 ** header.channels.length));
      assert.ok(scores!.split(",").every((s) => Number.isFinite(Number(s))));
      // seen then = every item of the events strictly before the moment: none is a candidate
      const seen = new Set(rows.filter((r) => r.timestampMs < Number(ts)).map((r) => r.itemId));
      assert.deepEqual(
        cands.filter((c) => seen.has(c)),
        [],
      );
    }
  });

  it("writes the replay KuaiFormer's data without each user's last contexts + 1 events", async () => {
    const out = join(dir, "data");
    execFileSync(
      process.execPath,
      [CLI, "--data", DATA, "--contexts", String(contexts), "--write-data", out],
      {
        stdio: ["ignore", "ignore", "inherit"],
        cwd: ROOT,
      },
    );
    const full = [...groupByUser(await loadInteractions(DATA))];
    const cut = new Map([...groupByUser(await loadInteractions(out))]);
    for (const [userId, rows] of full) {
      const kept = cut.get(userId)?.length ?? 0;
      assert.equal(kept, rows.length < 2 ? rows.length : Math.max(1, rows.length - 1 - contexts), userId);
    }
  });
});
