import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLogger, Metrics } from "@recsys/shared";
import { UserHistories } from "./history.js";
import { readState } from "./state.js";
import { type BufferedSample, OnlineTrainer, type OnlineTrainerOptions } from "./trainer.js";
import { type Decision, UpdateError, type UpdateResult } from "./update.js";

const logger = createLogger("test", "silent");
const SOURCE = "embedded:/bus/topics/samples";

const sample = (i: number, extra: Partial<BufferedSample> = {}): BufferedSample => ({
  userId: `u${i % 3}`,
  itemId: `i${i}`,
  timestampMs: 1_000_000 + i,
  labels: { click: i % 2, like: 0 },
  source: SOURCE,
  topic: "samples",
  partition: 0,
  offset: String(i * 10),
  next: BigInt(i * 10 + 10),
  ...extra,
});

const result = (decision: Decision, version?: string): UpdateResult => ({
  decision,
  reason: decision,
  version,
  parentVersion: "v0",
  raw: { decision },
});

interface Harness {
  trainer: OnlineTrainer;
  calls: Array<{ model: string; shard: string; lines: string[] }>;
  commits: BufferedSample[][];
  dir: string;
  metrics: Metrics;
}

function harness(
  dir: string,
  outcomes: Array<Decision | "fail" | "timeout"> | ((model: string) => Decision | "fail"),
  extra: Partial<OnlineTrainerOptions> = {},
): Harness {
  const calls: Harness["calls"] = [];
  const commits: BufferedSample[][] = [];
  const metrics = new Metrics("test");
  const queue = Array.isArray(outcomes) ? [...outcomes] : undefined;
  const trainer = new OnlineTrainer({
    dir,
    statePath: join(dir, "state.json"),
    models: ["em3"],
    policy: { everySamples: 5, everyMs: 60_000, minSamples: 3 },
    maxBuffer: 1_000,
    keepShards: 2,
    historyLength: 100,
    histories: new UserHistories(),
    async update(model, shard) {
      calls.push({ model, shard, lines: readFileSync(shard, "utf8").trim().split("\n") });
      const o = queue ? queue.shift() : (outcomes as (m: string) => Decision | "fail")(model);
      if (o === "fail") throw new UpdateError("exited with code 1", "failed", "Traceback");
      if (o === "timeout") throw new UpdateError("timed out", "timeout");
      return result(o ?? "published", o === "published" ? `v${calls.length}` : undefined);
    },
    feedbackCaughtUp: async () => true,
    async commit(through) {
      commits.push([...through]);
    },
    logger,
    metrics,
    ...extra,
  });
  return { trainer, calls, commits, dir, metrics };
}

describe("OnlineTrainer", () => {
  it("never trains on a sample twice across restarts (state file)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-state-"));
    const first = harness(dir, ["published"]);
    for (let i = 0; i < 5; i++) assert.equal(first.trainer.addSample(sample(i)), "buffered");
    assert.equal(first.trainer.due(), "samples");
    const out = await first.trainer.tick();
    assert.equal(out?.consumed, true);
    assert.equal(first.calls[0]!.lines.length, 5);
    assert.equal(first.trainer.bufferedCount, 0);
    assert.deepEqual(readState(join(dir, "state.json")).positions, { [SOURCE]: { "0": "50" } });
    assert.equal(first.commits[0]!.length, 5);

    // Restart: the same records are read again, then new ones.
    const second = harness(dir, ["rejected"]);
    assert.equal(second.trainer.resumeFrom(SOURCE, 0), 50n);
    for (let i = 0; i < 5; i++) assert.equal(second.trainer.addSample(sample(i)), "already_trained");
    for (let i = 5; i < 10; i++) assert.equal(second.trainer.addSample(sample(i)), "buffered");
    await second.trainer.tick();
    assert.deepEqual(
      second.calls[0]!.lines.map((l) => JSON.parse(l).item_id),
      ["i5", "i6", "i7", "i8", "i9"],
    );
    const state = readState(join(dir, "state.json"));
    assert.deepEqual(state.positions, { [SOURCE]: { "0": "100" } });
    assert.equal(state.updates, 2);
    assert.equal(state.maxTimestampMs[SOURCE], 1_000_009);
    // Other partitions and sources keep their own positions.
    assert.equal(second.trainer.addSample(sample(3, { partition: 1 })), "buffered");
    assert.equal(second.trainer.addSample(sample(3, { source: "kafka:samples" })), "buffered");
  });

  it("retries the samples of a failed update with the next one, and skips neither", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-retry-"));
    const h = harness(dir, ["fail", "timeout", "skipped", "published"]);
    for (let i = 0; i < 5; i++) h.trainer.addSample(sample(i));
    const failed = await h.trainer.tick();
    assert.equal(failed?.consumed, false);
    assert.equal(failed?.models.em3?.decision, "failed");
    assert.equal(h.trainer.bufferedCount, 5);
    assert.equal(h.trainer.due(), undefined); // the counters restarted: no retry loop
    assert.equal(existsSync(join(dir, "state.json")), true);
    assert.deepEqual(readState(join(dir, "state.json")).positions, {});

    for (let i = 5; i < 10; i++) h.trainer.addSample(sample(i));
    assert.equal((await h.trainer.tick())?.models.em3?.decision, "timeout");
    for (let i = 10; i < 15; i++) h.trainer.addSample(sample(i));
    assert.equal((await h.trainer.tick())?.models.em3?.decision, "skipped"); // did not train: kept
    for (let i = 15; i < 20; i++) h.trainer.addSample(sample(i));
    const ok = await h.trainer.tick();
    assert.equal(ok?.consumed, true);
    assert.deepEqual(
      h.calls.map((c) => c.lines.length),
      [5, 10, 15, 20],
    );
    assert.deepEqual(
      h.calls[3]!.lines.map((l) => JSON.parse(l).item_id),
      Array.from({ length: 20 }, (_, i) => `i${i}`),
    );
    assert.equal(h.trainer.bufferedCount, 0);
    // Shards of the last two updates only.
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".jsonl")).length, 2);
    const text = await h.metrics.registry.metrics();
    assert.match(text, /recsys_online_updates_total\{model="em3",decision="failed",service="test"\} 1/);
    assert.match(text, /recsys_online_updates_total\{model="em3",decision="timeout",service="test"\} 1/);
    assert.match(text, /recsys_online_updates_total\{model="em3",decision="published",service="test"\} 1/);
    assert.match(text, /recsys_online_last_publish_timestamp_seconds\{model="em3",service="test"\} \d+/);
    assert.match(text, /recsys_online_samples_buffered\{service="test"\} 0/);
  });

  it("fires on time with the minimum buffered, and waits for the feedback consumer", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-time-"));
    let now = 0;
    let feedbackReady = false;
    const h = harness(dir, ["published"], {
      now: () => now,
      feedbackCaughtUp: async () => feedbackReady,
    });
    h.trainer.addSample(sample(1));
    h.trainer.addSample(sample(2));
    now = 120_000;
    assert.equal(h.trainer.due(), undefined); // below the minimum
    h.trainer.addSample(sample(3));
    assert.equal(h.trainer.due(), "time");
    assert.equal(await h.trainer.tick(), undefined); // feedback not caught up: nothing taken
    assert.equal(h.calls.length, 0);
    assert.equal(h.trainer.due(), "time");
    feedbackReady = true;
    assert.equal((await h.trainer.tick())?.reason, "time");
    assert.equal(h.calls.length, 1);
  });

  it("drops the oldest samples beyond the buffer bound, and ignores redelivered records", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-bound-"));
    const h = harness(dir, ["published"], {
      maxBuffer: 4,
      policy: { everySamples: 100, everyMs: 1e9, minSamples: 1 },
    });
    for (let i = 0; i < 6; i++) h.trainer.addSample(sample(i));
    assert.equal(h.trainer.addSample(sample(5)), "duplicate");
    assert.equal(h.trainer.bufferedCount, 4);
    await h.trainer.update("samples");
    assert.deepEqual(
      h.calls[0]!.lines.map((l) => JSON.parse(l).item_id),
      ["i2", "i3", "i4", "i5"],
    );
    const text = await h.metrics.registry.metrics();
    assert.match(text, /recsys_online_samples_total\{outcome="dropped",service="test"\} 2/);
    assert.match(text, /recsys_online_samples_total\{outcome="duplicate",service="test"\} 1/);
  });

  it("keeps samples that arrive during an update; a failed update's samples are the oldest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-inflight-"));
    let release: () => void = () => {};
    const h = harness(dir, [], {
      maxBuffer: 4,
      policy: { everySamples: 4, everyMs: 1e9, minSamples: 1 },
      update: () =>
        new Promise<UpdateResult>((_, reject) => {
          release = () => reject(new UpdateError("exited with code 1", "failed"));
        }),
    });
    for (let i = 0; i < 4; i++) h.trainer.addSample(sample(i));
    const run = h.trainer.tick();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(h.trainer.updating, true);
    for (let i = 4; i < 8; i++) assert.equal(h.trainer.addSample(sample(i)), "buffered");
    assert.equal(h.trainer.bufferedCount, 8);
    release();
    assert.equal((await run)?.consumed, false);
    assert.equal(h.trainer.bufferedCount, 4); // the retried ones (oldest) were dropped
    h.trainer.addSample(sample(8));
    assert.equal(h.trainer.bufferedCount, 4);
  });

  it("counts and skips bad samples", () => {
    const h = harness(mkdtempSync(join(tmpdir(), "online-bad-")), []);
    assert.equal(h.trainer.addSample(sample(1, { userId: "" })), "invalid");
    assert.equal(h.trainer.addSample(sample(2, { timestampMs: 0 })), "invalid");
    assert.equal(h.trainer.addSample(sample(3, { labels: { click: Number.NaN } })), "invalid");
    assert.equal(h.trainer.bufferedCount, 0);
  });

  it("with several models, consumes the shard when one of them trained on it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-models-"));
    const h = harness(dir, (model) => (model === "em3" ? "rejected" : "fail"), {
      models: ["em3", "prerank"],
    });
    for (let i = 0; i < 5; i++) h.trainer.addSample(sample(i));
    const out = await h.trainer.tick();
    assert.deepEqual(
      h.calls.map((c) => c.model),
      ["em3", "prerank"],
    );
    assert.equal(h.calls[0]!.shard, h.calls[1]!.shard);
    assert.equal(out?.consumed, true);
    assert.equal(out?.models.prerank?.decision, "failed");
    const recent = readState(join(dir, "state.json")).recent;
    assert.equal(recent.at(-1)?.results.prerank?.decision, "failed");
  });

  it("treats a log re-created from scratch as new, above the newest time trained on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "online-reset-"));
    const first = harness(dir, ["published"]);
    for (let i = 0; i < 5; i++) first.trainer.addSample(sample(i));
    await first.trainer.tick();
    const second = harness(dir, []);
    second.trainer.resetSource(SOURCE);
    assert.equal(second.trainer.resumeFrom(SOURCE, 0), 0n);
    assert.equal(second.trainer.addSample(sample(3, { offset: "0", next: 10n })), "already_trained"); // old time
    assert.equal(second.trainer.addSample(sample(7, { offset: "0", next: 10n })), "buffered");
    // A restart before the next update still knows it.
    assert.deepEqual(readState(join(dir, "state.json")).positions, {});
  });
});
