import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EmbeddedLog, type LogDamage } from "./log.js";
import { runFaultCampaign } from "./log-faults.js";

const rec = (i: number) => ({ key: `user-${i}`, value: new Uint8Array(40).fill(i), timestampMs: 1e12 + i });

describe("durable log under faults", () => {
  it("loses no acknowledged record in 250 randomised runs of write faults, kill -9 and flipped bytes", async () => {
    const results = await runFaultCampaign(250, 7);
    const failed = results.filter((r) => r.problem || r.lost.length > 0);
    assert.deepEqual(
      failed.map((r) => `${r.kind} seed ${r.seed}: ${r.problem ?? `lost ${r.lost.join(",")}`}`),
      [],
    );
    for (const kind of ["write", "kill", "damage"])
      assert.ok(
        results.some((r) => r.kind === kind && r.acknowledged > 0),
        `the campaign ran ${kind} faults`,
      );
    // every flipped byte was found, quarantined and reported
    assert.ok(results.filter((r) => r.kind === "damage").every((r) => r.damaged === 1));
  });

  it("quarantines a flipped byte in the middle, keeps every record after it and reports where", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir);
    for (let i = 0; i < 1000; i++) await log.append([rec(i)], i % 100 === 99);
    await log.close();
    const segment = join(dir, readdirSync(dir).find((f) => f.endsWith(".log"))!);
    const bytes = readFileSync(segment);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0x10;
    writeFileSync(segment, bytes);

    const reported: LogDamage[] = [];
    const reopened = await EmbeddedLog.open(dir, { onDamage: (d) => reported.push(d) });
    const keys: string[] = [];
    for (let offset = reopened.startOffset; ; ) {
      const { records, next } = await reopened.read(offset);
      keys.push(...records.map((r) => r.key));
      if (next === offset) break;
      offset = next;
    }
    assert.equal(keys.length, 999, "only the damaged record is gone from the log");
    assert.equal(reported.length, 1);
    assert.deepEqual(reopened.damage, reported);
    const damage = reported[0]!;
    assert.ok(damage.offset <= middle && middle < damage.offset + damage.bytes);
    assert.ok(readFileSync(damage.quarantinedTo).length === damage.bytes, "its bytes are kept aside");
    // appends go on after the repaired segment, at the offset readers expect
    await reopened.append([rec(5000)]);
    const { records } = await reopened.read(bytes.length);
    assert.deepEqual(
      records.map((r) => r.key),
      ["user-5000"],
    );
    await reopened.close();
  });

  it("refuses a record that would read as padding, so no real record is ever skipped", async () => {
    const log = await EmbeddedLog.open(mkdtempSync(join(tmpdir(), "log-")));
    await assert.rejects(
      log.append([{ key: "", value: new Uint8Array(1), timestampMs: Number.NaN }]),
      /would read as padding/,
    );
    await log.append([rec(1)]);
    assert.equal((await log.read(0)).records.length, 1);
    await log.close();
  });
});
