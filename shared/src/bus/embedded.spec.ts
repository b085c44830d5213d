import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLogger } from "../log.js";
import { EmbeddedBus } from "./embedded.js";
import type { BusRecord, ConsumedRecord } from "./port.js";

const logger = createLogger("test", "silent");
const rec = (key: string, text: string): BusRecord => ({
  key,
  value: new TextEncoder().encode(text),
  timestampMs: Date.now(),
});
const text = (r: ConsumedRecord) => new TextDecoder().decode(r.value);

async function until(cond: () => boolean, ms = 3_000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), "condition not met in time");
}

describe("EmbeddedBus", () => {
  it("delivers to each group once, resumes from the committed position after a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bus-"));
    let bus = EmbeddedBus.open({ dir, logger });
    await bus.publish("feedback", [rec("u1", "a"), rec("u2", "b")]);
    const got: string[] = [];
    let sub = await bus.subscribe({
      groupId: "g",
      topics: ["feedback"],
      fromBeginning: true,
      handle: async (batch) => {
        got.push(...batch.map(text));
      },
    });
    assert.equal(await sub.waitCaughtUp(2_000), true);
    await bus.publish("feedback", [rec("u1", "c")]);
    await until(() => got.length === 3);
    await bus.close();

    // Restart: records published while nobody listened arrive, old ones do not.
    bus = EmbeddedBus.open({ dir, logger });
    await bus.publish("feedback", [rec("u3", "d")]);
    const after: string[] = [];
    sub = await bus.subscribe({
      groupId: "g",
      topics: ["feedback"],
      fromBeginning: true,
      handle: async (batch) => {
        after.push(...batch.map(text));
      },
    });
    await until(() => after.length === 1);
    assert.deepEqual(got, ["a", "b", "c"]);
    assert.deepEqual(after, ["d"]);
    await sub.stop();
    await bus.close();
  });

  it("commit: false replays everything at each start", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bus-"));
    for (const expected of [2, 3]) {
      const bus = EmbeddedBus.open({ dir, logger });
      if (expected === 2) await bus.publish("t", [rec("k", "1"), rec("k", "2")]);
      else await bus.publish("t", [rec("k", "3")]);
      const got: string[] = [];
      const sub = await bus.subscribe({
        groupId: "memory",
        topics: ["t"],
        fromBeginning: true,
        commit: false,
        handle: async (b) => {
          got.push(...b.map(text));
        },
      });
      await sub.waitCaughtUp(2_000);
      assert.equal(got.length, expected);
      await bus.close();
    }
  });

  it("writes positions at most every commitIntervalMs, and when the consumer stops", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bus-"));
    let bus = EmbeddedBus.open({ dir, logger, commitIntervalMs: 60_000, maxBatchBytes: 64 });
    await bus.publish(
      "t",
      Array.from({ length: 20 }, (_, i) => rec("k", `r${i}`)),
    );
    const got: string[] = [];
    const sub = await bus.subscribe({
      groupId: "slow-commits",
      topics: ["t"],
      fromBeginning: true,
      handle: async (batch) => {
        got.push(...batch.map(text));
      },
    });
    assert.equal(await sub.waitCaughtUp(2_000), true);
    const positions = join(dir, "groups", "slow-commits.json");
    await bus.publish("t", [rec("k", "late")]);
    await until(() => got.length === 21);
    assert.equal(existsSync(positions), false, "not written before the interval");
    await bus.close(); // stop writes what was handled
    assert.equal(existsSync(positions), true);

    bus = EmbeddedBus.open({ dir, logger });
    const again: string[] = [];
    const resumed = await bus.subscribe({
      groupId: "slow-commits",
      topics: ["t"],
      fromBeginning: true,
      handle: async (batch) => {
        again.push(...batch.map(text));
      },
    });
    assert.equal(await resumed.waitCaughtUp(2_000), true);
    assert.deepEqual(again, []); // nothing handled before is delivered again
    await bus.close();
  });

  it('commit: "manual" commits only through the records given to commit()', async () => {
    const dir = mkdtempSync(join(tmpdir(), "bus-"));
    let bus = EmbeddedBus.open({ dir, logger });
    await bus.publish("t", [rec("k", "1"), rec("k", "2"), rec("k", "3")]);
    const got: ConsumedRecord[] = [];
    const subscribe = (into: ConsumedRecord[]) =>
      bus.subscribe({
        groupId: "buffering",
        topics: ["t"],
        fromBeginning: true,
        commit: "manual",
        handle: async (b) => {
          into.push(...b);
        },
      });
    let sub = await subscribe(got);
    assert.equal(await sub.waitCaughtUp(2_000), true);
    assert.deepEqual(got.map(text), ["1", "2", "3"]);
    await bus.close();

    // Nothing committed: everything again.
    bus = EmbeddedBus.open({ dir, logger });
    const again: ConsumedRecord[] = [];
    sub = await subscribe(again);
    assert.equal(await sub.waitCaughtUp(2_000), true);
    assert.deepEqual(again.map(text), ["1", "2", "3"]);
    await sub.commit!([again[1]!]);
    await sub.commit!([again[0]!]); // never backwards
    await bus.close();

    bus = EmbeddedBus.open({ dir, logger });
    const rest: ConsumedRecord[] = [];
    sub = await subscribe(rest);
    assert.equal(await sub.waitCaughtUp(2_000), true);
    assert.deepEqual(rest.map(text), ["3"]);
    await bus.close();
  });

  it("redelivers a batch whose handler failed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bus-"));
    const bus = EmbeddedBus.open({ dir, logger });
    await bus.publish("t", [rec("k", "x")]);
    let calls = 0;
    const sub = await bus.subscribe({
      groupId: "g",
      topics: ["t"],
      fromBeginning: true,
      handle: async () => {
        calls++;
        if (calls === 1) throw new Error("transient");
      },
    });
    await until(() => calls === 2);
    assert.equal(await sub.waitCaughtUp(2_000), true);
    await bus.close();
  });

  it("refuses a directory held by another live process", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bus-"));
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "LOCK"), String(process.ppid));
    assert.throws(() => EmbeddedBus.open({ dir, logger }), /in use by process/);
  });
});
