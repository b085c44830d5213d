import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EmbeddedLog, type LogRecord } from "./log.js";

const rec = (i: number, size = 10): LogRecord => ({
  key: `user-${i}`,
  value: new Uint8Array(size).fill(i % 251),
  timestampMs: 1_700_000_000_000 + i,
});

async function readAll(log: EmbeddedLog, from = 0, maxBytes = 4096) {
  const out = [];
  let offset = from;
  for (;;) {
    const { records, next } = await log.read(offset, maxBytes);
    if (records.length === 0) return out;
    out.push(...records);
    offset = next;
  }
}

describe("EmbeddedLog", () => {
  it("appends, reads back in order, and survives a reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir);
    await log.append([rec(1), rec(2)]);
    await Promise.all([log.append([rec(3)]), log.append([rec(4)], false), log.append([rec(5)])]);
    await log.close();
    const reopened = await EmbeddedLog.open(dir);
    const records = await readAll(reopened);
    assert.deepEqual(
      records.map((r) => r.key),
      ["user-1", "user-2", "user-3", "user-4", "user-5"],
    );
    assert.equal(records[2]!.timestampMs, 1_700_000_000_003);
    assert.deepEqual([...records[3]!.value], new Array(10).fill(4));
    assert.equal(records[4]!.nextOffset, reopened.endOffset);
    await reopened.close();
  });

  it("truncates a torn tail left by a crash mid-write", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir);
    await log.append([rec(1), rec(2), rec(3)]);
    const end = log.endOffset;
    await log.close();
    const segment = join(dir, readdirSync(dir)[0]!);
    truncateSync(segment, end - 3); // the last frame loses its tail
    const reopened = await EmbeddedLog.open(dir);
    assert.deepEqual(
      (await readAll(reopened)).map((r) => r.key),
      ["user-1", "user-2"],
    );
    await reopened.append([rec(4)]);
    assert.deepEqual(
      (await readAll(reopened)).map((r) => r.key),
      ["user-1", "user-2", "user-4"],
    );
    await reopened.close();
  });

  it("rolls segments, reads across them, and applies retention", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir, { segmentBytes: 200, retentionBytes: 600 });
    for (let i = 0; i < 40; i++) await log.append([rec(i, 20)]);
    const segments = readdirSync(dir).filter((f) => f.endsWith(".log"));
    assert.ok(segments.length >= 2 && segments.length <= 5, `segments: ${segments.length}`);
    const total = segments.reduce((s, f) => s + statSync(join(dir, f)).size, 0);
    assert.ok(total <= 600 + 200, `retained ${total} bytes`);
    const records = await readAll(log, 0, 64);
    assert.equal(records.at(-1)!.key, "user-39");
    const ids = records.map((r) => Number(r.key.slice(5)));
    assert.deepEqual(
      ids,
      ids.map((_, i) => ids[0]! + i),
      "contiguous from the oldest retained",
    );
    await log.close();
  });

  it("reads a record bigger than the read budget whole", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir);
    await log.append([rec(1, 5000), rec(2, 5)]);
    const { records } = await log.read(0, 100);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.value.length, 5000);
    await log.close();
  });

  it("truncateBefore drops whole segments only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir, { segmentBytes: 100 });
    for (let i = 0; i < 20; i++) await log.append([rec(i, 20)]);
    const { records } = await log.read(0, 10_000);
    const cut = records[10]!.offset;
    await log.truncateBefore(cut);
    assert.ok(log.startOffset <= cut);
    const rest = await readAll(log, log.startOffset);
    assert.ok(rest.some((r) => r.key === "user-10"));
    await log.close();
  });

  it("wakes a waiting reader on append", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir);
    const started = Date.now();
    const waiting = log.waitForData(0, 5_000);
    setTimeout(() => void log.append([rec(1)]), 20);
    await waiting;
    assert.ok(Date.now() - started < 1_000);
    await log.close();
  });

  it("ends a wait when its signal aborts, so a reader woken elsewhere leaves nothing behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-"));
    const log = await EmbeddedLog.open(dir);
    const started = Date.now();
    const stop = new AbortController();
    const waiting = log.waitForData(0, 5_000, stop.signal);
    setTimeout(() => stop.abort(), 20);
    await waiting;
    assert.ok(Date.now() - started < 1_000, "resolved on abort, not at the timeout");
    const aborted = new AbortController();
    aborted.abort();
    await log.waitForData(0, 5_000, aborted.signal); // already aborted: resolves at once
    assert.ok(Date.now() - started < 1_000);
    await log.close();
  });
});
