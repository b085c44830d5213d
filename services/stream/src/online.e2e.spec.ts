/**
 * Integration: the whole funnel in full mode (real Kafka broker, real Redis,
 * the stream service), called over gRPC as a product backend would.
 * scripts/test.sh starts the broker and Redis once for the whole run and
 * passes them in RECSYS_TEST_KAFKA_BROKERS / RECSYS_TEST_REDIS_URL; without
 * them the suite is skipped. Each run uses its own topic and key namespace.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LocalStack } from "@recsys/local";
import { type ClientOf, createClient, createLogger } from "@recsys/shared";
import { decodeRecord, KafkaBus, type Subscription, TOPICS } from "@recsys/shared/bus";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import type { Sample } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import {
  FeedbackService,
  RecommendService,
} from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { RedisUserStateStore } from "@recsys/shared/userstate-redis";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const BROKERS = process.env.RECSYS_TEST_KAFKA_BROKERS;
const REDIS = process.env.RECSYS_TEST_REDIS_URL;
const BASE_PORT = Number(process.env.RECSYS_E2E_FULL_BASE_PORT ?? 57151);
const ATTRIBUTION_WINDOW_MS = 1_500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logger = createLogger("e2e", "silent");

/** Runs scripts/<name>/<action>.sh against the test broker or Redis (same ports as test.sh). */
async function infra(name: "kafka" | "redis", action: "start" | "stop"): Promise<void> {
  const env = {
    ...process.env,
    RECSYS_KAFKA_PORT: BROKERS?.split(",")[0]?.split(":")[1] ?? "9092",
    RECSYS_REDIS_PORT: new URL(REDIS ?? "redis://127.0.0.1:6379").port || "6379",
  };
  // Asynchronous: the reporter keeps sending while the broker stops and starts.
  await promisify(execFile)("bash", [join(ROOT, "scripts", name, `${action}.sh`)], { env });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

describe("online path on Kafka + Redis (stream service)", {
  concurrency: false,
  skip: BROKERS && REDIS ? false : "RECSYS_TEST_KAFKA_BROKERS / RECSYS_TEST_REDIS_URL not set",
}, () => {
  const ns = `e2e${Date.now()}.`;
  let stack: LocalStack;
  let recommend: ClientOf<typeof RecommendService>;
  let feedback: ClientOf<typeof FeedbackService>;
  let redis: RedisUserStateStore;
  let samplesBus: KafkaBus;
  let samplesSub: Subscription;
  const samples: Sample[] = [];

  before(async () => {
    const testModels = resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models");
    stack = await LocalStack.start({
      rootDir: ROOT,
      basePort: BASE_PORT,
      mode: "full",
      kafkaBrokers: BROKERS,
      redisUrl: REDIS,
      namespace: ns,
      stateDir: mkdtempSync(join(tmpdir(), "recsys-e2e-full-")),
      logDir: join(ROOT, "var", "log", "e2e-full"),
      modelStore: existsSync(testModels) ? testModels : undefined,
      env: {
        RECSYS_ATTRIBUTION_WINDOW_MS: String(ATTRIBUTION_WINDOW_MS),
        RECSYS_WARMUP_REQUESTS: "10",
        RECSYS_BUS_SEND_TIMEOUT_MS: "1000",
      },
    });
    recommend = createClient(RecommendService, stack.gatewayTarget);
    feedback = createClient(FeedbackService, stack.gatewayTarget);
    redis = await RedisUserStateStore.connect({ url: REDIS!, logger, prefix: ns, timeoutMs: 2_000 });
    samplesBus = new KafkaBus({ brokers: BROKERS!.split(","), clientId: "e2e-samples", logger });
    samplesSub = await samplesBus.subscribe({
      groupId: `${ns}e2e-samples-reader`,
      topics: [`${ns}samples`],
      fromBeginning: true,
      handle: async (batch) => {
        for (const r of batch) samples.push(decodeRecord(TOPICS.samples, r));
      },
    });
  });

  after(async () => {
    recommend?.close();
    feedback?.close();
    await samplesSub?.stop();
    await samplesBus?.close();
    await redis?.close();
    await stack?.stopAll();
  });

  it("uses fresh feedback at once: history within 1 s, seen-filtered, trending, and a labelled sample", async () => {
    const user = "15";
    const first = await recommend.recommend({ userId: user, count: 10 }, { timeoutMs: 2_000 });
    assert.ok(!first.degradations.includes("user_state_unavailable"), first.degradations.join(","));
    const clicked = first.items[0]!.itemId;
    const ack = await feedback.report(
      { events: [{ userId: user, itemId: clicked, type: EventType.CLICK, requestId: first.requestId }] },
      { timeoutMs: 3_000 },
    );
    const acked = Date.now();
    assert.equal(ack.eventIds.length, 1);

    // The next Recommend reads the history from Redis: the click is in it
    // and the item is filtered as seen.
    await until(
      "the click in the user's history",
      async () => ((await redis.get(user)).history.some((h) => h.itemId === clicked) ? true : undefined),
      1_000,
    );
    const afterClick = await recommend.recommend({ userId: user, count: 10 }, { timeoutMs: 2_000 });
    const visibleAfterMs = Date.now() - acked;
    assert.ok(visibleAfterMs <= 1_000, `history visible to Recommend after ${visibleAfterMs} ms`);
    assert.ok(!afterClick.items.some((i) => i.itemId === clicked), "the clicked item is filtered as seen");

    const trending = await redis.client.zScore(`${ns}trending`, clicked);
    assert.ok(trending !== null && trending > 0, "the click counts towards trending");

    // Once the attribution window closes, the impression becomes samples:
    // the clicked item positive, the others shown but not engaged negative.
    const mine = await until(
      "samples of the first response",
      async () => {
        const s = samples.filter((x) => x.requestId === first.requestId);
        return s.length === first.items.length ? s : undefined;
      },
      ATTRIBUTION_WINDOW_MS + 15_000,
    );
    for (const s of mine) {
      assert.equal(s.userId, user);
      assert.deepEqual(s.labels, s.itemId === clicked ? { click: 1, like: 0 } : { click: 0, like: 0 });
    }
  });

  it("loses nothing across a broker restart: every acknowledged event is in user state exactly once", async () => {
    const users = Array.from({ length: 8 }, (_, i) => `restart-${ns}${i}`);
    const acked: Array<{ user: string; eventId: string }> = [];
    let failedCalls = 0;
    let running = true;
    let seq = 0;
    // A steady 50 events/s, each retried with the same id until acknowledged
    // (what a product backend does with UNAVAILABLE).
    const reporter = (async () => {
      while (running) {
        const i = seq++;
        const user = users[i % users.length]!;
        const eventId = `${ns}ev-${i}`;
        for (;;) {
          try {
            await feedback.report(
              { events: [{ eventId, userId: user, itemId: `item-${i}`, type: EventType.CLICK }] },
              { timeoutMs: 5_000 },
            );
            acked.push({ user, eventId });
            break;
          } catch {
            failedCalls++;
            await sleep(100);
          }
        }
        await sleep(20);
      }
    })();
    await sleep(1_500);
    await infra("kafka", "stop");
    const duringOutage = acked.length;
    await sleep(2_500);
    await infra("kafka", "start");
    await sleep(1_500);
    running = false;
    await reporter;
    assert.ok(acked.length - duringOutage > 50, "Report kept succeeding while the broker was down");

    const wanted = new Map<string, Set<string>>();
    for (const a of acked) {
      let set = wanted.get(a.user);
      if (!set) wanted.set(a.user, (set = new Set()));
      set.add(`item-${a.eventId.slice(`${ns}ev-`.length)}`);
    }
    const counted = await until(
      "every acknowledged event in Redis",
      async () => {
        let total = 0;
        for (const [user, items] of wanted) {
          const history = (await redis.get(user, 10_000)).history;
          if (history.length < items.size) return undefined;
          total += history.length;
        }
        return total;
      },
      60_000,
    );
    // Count in == count out, and each event once (no duplicates after replay).
    assert.equal(counted, acked.length, `acknowledged ${acked.length}, in user state ${counted}`);
    for (const [user, items] of wanted) {
      const history = (await redis.get(user, 10_000)).history.map((h) => h.itemId);
      assert.equal(new Set(history).size, history.length, `${user}: no duplicates`);
      for (const item of items) assert.ok(history.includes(item), `${user}: ${item} arrived`);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${stack.metricsPort("gateway")}/metrics`)).text();
    assert.match(metrics, /recsys_bus_spilled_total\{topic="[^"]*feedback",service="gateway"\} [1-9]/);
    assert.match(metrics, /recsys_bus_replayed_total\{topic="[^"]*feedback",service="gateway"\} [1-9]/);
    assert.equal(failedCalls, 0, "no Report failed: events were spilled instead");
  });

  it("answers with user_state_unavailable while Redis is down, and recovers", async () => {
    await infra("redis", "stop");
    try {
      for (const user of ["15", "never-read-user"]) {
        const started = Date.now();
        const res = await recommend.recommend({ userId: user, count: 10 }, { timeoutMs: 2_000 });
        assert.ok(Date.now() - started < 1_000, "answers without waiting for Redis");
        assert.equal(res.items.length, 10);
        assert.ok(
          res.degradations.includes("user_state_unavailable"),
          `${user}: ${res.degradations.join(",")}`,
        );
      }
    } finally {
      await infra("redis", "start");
    }
    // The client reconnects and the stream re-imports the histories into the empty Redis.
    await until(
      "a healthy Recommend after Redis is back",
      async () => {
        const res = await recommend.recommend({ userId: "15", count: 10 }, { timeoutMs: 2_000 });
        return res.degradations.some((d) => d.startsWith("user_state") || d === "unknown_user")
          ? undefined
          : true;
      },
      20_000,
    );
  });
});
