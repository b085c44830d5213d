/**
 * The Kafka adapter against a real broker. Runs when RECSYS_TEST_KAFKA_BROKERS
 * is set (scripts/test.sh starts one); skipped otherwise.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../log.js";
import { KafkaBus } from "./kafka.js";
import type { BusRecord, ConsumedRecord } from "./port.js";

const brokers = process.env.RECSYS_TEST_KAFKA_BROKERS;
const logger = createLogger("test", "silent");
const rec = (key: string, text: string): BusRecord => ({
  key,
  value: new TextEncoder().encode(text),
  timestampMs: Date.now(),
});

describe("KafkaBus (real broker)", { skip: brokers ? false : "RECSYS_TEST_KAFKA_BROKERS not set" }, () => {
  it("creates topics, publishes keyed records, and resumes a group from its committed position", async () => {
    const topic = `test-kafkabus-${Date.now()}`;
    const bus = new KafkaBus({ brokers: brokers!.split(","), clientId: "kafka-spec", logger, partitions: 2 });
    try {
      await bus.ensureTopics([topic]);
      await bus.ensureTopics([topic]); // idempotent
      await bus.publish(topic, [rec("u1", "a"), rec("u2", "b"), rec("u1", "c")]);
      const got: Array<{ key: string; text: string; partition: number }> = [];
      const sub = await bus.subscribe({
        groupId: `${topic}-g`,
        topics: [topic],
        fromBeginning: true,
        handle: async (batch) => {
          for (const r of batch)
            got.push({ key: r.key, text: new TextDecoder().decode(r.value), partition: r.partition });
        },
      });
      assert.equal(await sub.waitCaughtUp(20_000), true);
      assert.equal(got.length, 3);
      // Same key, same partition, in order.
      const u1 = got.filter((g) => g.key === "u1");
      assert.deepEqual(
        u1.map((g) => g.text),
        ["a", "c"],
      );
      assert.equal(new Set(u1.map((g) => g.partition)).size, 1);
      await sub.stop();

      await bus.publish(topic, [rec("u3", "d")]);
      const later: string[] = [];
      const again = await bus.subscribe({
        groupId: `${topic}-g`,
        topics: [topic],
        fromBeginning: true,
        handle: async (batch) => {
          later.push(...batch.map((r) => new TextDecoder().decode(r.value)));
        },
      });
      assert.equal(await again.waitCaughtUp(20_000), true);
      assert.deepEqual(later, ["d"]);
      await again.stop();
    } finally {
      await bus.close();
    }
  });

  it("resolves back-to-back publishes (one issued as the previous one resolves)", {
    timeout: 30_000,
  }, async () => {
    const topic = `test-kafka-seq-${Date.now()}`;
    const bus = new KafkaBus({ brokers: brokers!.split(","), clientId: "kafka-spec-seq", logger });
    try {
      await bus.ensureTopics([topic]);
      // Awaited directly: the next publish starts in the microtask after the previous one resolved.
      for (const text of ["a", "b", "c"]) await bus.publish(topic, [rec("k", text)]);
    } finally {
      await bus.close();
    }
  });

  it('commit: "manual" commits only through the records given to commit()', async () => {
    const topic = `test-kafka-manual-${Date.now()}`;
    const bus = new KafkaBus({ brokers: brokers!.split(","), clientId: "kafka-spec-manual", logger });
    try {
      await bus.ensureTopics([topic]);
      await bus.publish(topic, [rec("u1", "a"), rec("u1", "b"), rec("u1", "c")]);
      const read = async (commitThrough?: (r: ConsumedRecord[]) => ConsumedRecord | undefined) => {
        const got: ConsumedRecord[] = [];
        const sub = await bus.subscribe({
          groupId: `${topic}-g`,
          topics: [topic],
          fromBeginning: true,
          commit: "manual",
          handle: async (batch) => {
            got.push(...batch);
          },
        });
        assert.equal(await sub.waitCaughtUp(20_000), true);
        const through = commitThrough?.(got);
        if (through) await sub.commit!([through]);
        await sub.stop();
        return got.map((r) => new TextDecoder().decode(r.value));
      };
      assert.deepEqual(await read(), ["a", "b", "c"]);
      assert.deepEqual(await read((got) => got[1]), ["a", "b", "c"]); // nothing committed before
      assert.deepEqual(await read(), ["c"]);
    } finally {
      await bus.close();
    }
  });

  it("creates the items topic compacted and the others with the default delete policy", async () => {
    const prefix = `test-compact-${Date.now()}-`;
    const bus = new KafkaBus({ brokers: brokers!.split(","), clientId: "kafka-spec-compact", logger });
    try {
      const names = [`${prefix}items`, `${prefix}model-versions`, `${prefix}feedback`];
      await bus.ensureTopics(names);
      assert.deepEqual(await bus.cleanupPolicies(names), {
        [`${prefix}items`]: "compact",
        [`${prefix}model-versions`]: "compact",
        [`${prefix}feedback`]: "delete",
      });
    } finally {
      await bus.close();
    }
  });

  it("fails a publish within seconds when no broker answers", async () => {
    const bus = new KafkaBus({ brokers: ["127.0.0.1:1"], clientId: "kafka-spec-down", logger });
    const t0 = Date.now();
    await assert.rejects(bus.publish("nowhere", [rec("k", "x")]));
    assert.ok(Date.now() - t0 < 15_000, `failed after ${Date.now() - t0} ms`);
    await bus.close();
  });
});
