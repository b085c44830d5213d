import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLogger } from "../log.js";
import { EmbeddedBus } from "./embedded.js";
import type { BusRecord, EventBus, PublishOptions } from "./port.js";
import { SpillingPublisher } from "./spill.js";

const logger = createLogger("test", "silent");
const rec = (i: number): BusRecord => ({
  key: `u${i % 3}`,
  value: new TextEncoder().encode(String(i)),
  timestampMs: 1_000 + i,
});

/** A primary bus that can be switched off (as a broker outage) or made slow; records land in a real log. */
class SwitchableBus implements EventBus {
  readonly kind = "kafka" as const;
  down = false;
  delayMs = 0;
  constructor(readonly inner: EmbeddedBus) {}
  ensureTopics(t: readonly string[]) {
    return this.inner.ensureTopics(t);
  }
  async publish(topic: string, records: readonly BusRecord[], o?: PublishOptions) {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.down) throw new Error("broker unavailable");
    return this.inner.publish(topic, records, o);
  }
  subscribe(o: Parameters<EventBus["subscribe"]>[0]) {
    return this.inner.subscribe(o);
  }
  close() {
    return this.inner.close();
  }
}

async function delivered(bus: EmbeddedBus, topic: string): Promise<string[]> {
  const log = await bus.log(topic);
  const { records } = await log.read(0, 1 << 20);
  return records.map((r) => new TextDecoder().decode(r.value));
}

async function until(cond: () => Promise<boolean> | boolean, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!(await cond()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(await cond(), "condition not met in time");
}

describe("SpillingPublisher", () => {
  it("publishes directly while the primary is up", async () => {
    const primary = new SwitchableBus(EmbeddedBus.open({ dir: mkdtempSync(join(tmpdir(), "p-")), logger }));
    const spill = await SpillingPublisher.open({ primary, dir: mkdtempSync(join(tmpdir(), "s-")), logger });
    assert.equal(await spill.publish("feedback", [rec(1)]), "direct");
    assert.deepEqual(await delivered(primary.inner, "feedback"), ["1"]);
    await spill.close();
    await primary.close();
  });

  it("spills during an outage, keeps order, and replays everything once the primary is back", async () => {
    const primary = new SwitchableBus(EmbeddedBus.open({ dir: mkdtempSync(join(tmpdir(), "p-")), logger }));
    const spill = await SpillingPublisher.open({ primary, dir: mkdtempSync(join(tmpdir(), "s-")), logger });
    assert.equal(await spill.publish("feedback", [rec(1)]), "direct");
    primary.down = true;
    assert.equal(await spill.publish("feedback", [rec(2)]), "spilled");
    assert.equal(await spill.publish("feedback", [rec(3), rec(4)]), "spilled");
    primary.down = false;
    // While a backlog exists, new records queue behind it.
    assert.equal(await spill.publish("feedback", [rec(5)]), "spilled");
    await until(async () => (await delivered(primary.inner, "feedback")).length === 5);
    assert.deepEqual(await delivered(primary.inner, "feedback"), ["1", "2", "3", "4", "5"]);
    await until(async () => (await spill.backlog()).feedback === 0);
    assert.equal(await spill.publish("feedback", [rec(6)]), "direct");
    await spill.close();
    await primary.close();
  });

  it("spills a publish slower than the send timeout", async () => {
    const primary = new SwitchableBus(EmbeddedBus.open({ dir: mkdtempSync(join(tmpdir(), "p-")), logger }));
    const spill = await SpillingPublisher.open({
      primary,
      dir: mkdtempSync(join(tmpdir(), "s-")),
      logger,
      sendTimeoutMs: 50,
    });
    primary.delayMs = 300;
    const t0 = Date.now();
    assert.equal(await spill.publish("impressions", [rec(1)]), "spilled");
    assert.ok(Date.now() - t0 < 250);
    primary.delayMs = 0;
    // The slow send also landed: at least once, consumers de-duplicate.
    await until(async () => (await delivered(primary.inner, "impressions")).length >= 1);
    await spill.close();
    await primary.close();
  });

  it("replays a backlog left by a previous process", async () => {
    const spillDir = mkdtempSync(join(tmpdir(), "s-"));
    const primary = new SwitchableBus(EmbeddedBus.open({ dir: mkdtempSync(join(tmpdir(), "p-")), logger }));
    primary.down = true;
    const first = await SpillingPublisher.open({ primary, dir: spillDir, logger });
    for (let i = 1; i <= 3; i++) assert.equal(await first.publish("feedback", [rec(i)]), "spilled");
    await first.close(); // the process stops with the broker still down
    primary.down = false;
    const second = await SpillingPublisher.open({ primary, dir: spillDir, logger });
    await until(async () => (await delivered(primary.inner, "feedback")).length === 3);
    assert.deepEqual(await delivered(primary.inner, "feedback"), ["1", "2", "3"]);
    await second.close();
    await primary.close();
  });
});
