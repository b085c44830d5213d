/**
 * Feedback benchmarks over the real processes (not a test):
 *   1. ingest: events/s through FeedbackService.Report into the bus, with
 *      Report latency (each answer means "durable": Kafka acks=all, or fsync
 *      on the embedded bus);
 *   2. freshness (full mode): from sending a Report to the event being in the
 *      user state that the next Recommend reads (Redis), p50/p99, measured
 *      under a background feedback load.
 *
 *   npm run bench:feedback                # full mode: starts Kafka + Redis
 *   node services/stream/dist/bench/feedback.js --mode embedded
 * Options: --seconds 15 --concurrency 32 --batch 1 --probes 300 --load 500
 */
import { cpus, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LocalStack } from "@recsys/local";
import { createClient, createLogger } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { FeedbackService } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { RedisUserStateStore } from "@recsys/shared/userstate-redis";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const { values: args } = parseArgs({
  options: {
    mode: { type: "string", default: "full" },
    seconds: { type: "string", default: "15" },
    concurrency: { type: "string", default: "32" },
    batch: { type: "string", default: "1" },
    probes: { type: "string", default: "300" },
    load: { type: "string", default: "500" },
    "base-port": { type: "string", default: "57251" },
  },
});
const mode = args.mode === "embedded" ? "embedded" : "full";
const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);
const batch = Number(args.batch);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (m: string) => process.stderr.write(`[bench] ${m}\n`);

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const ns = `bench${Date.now()}.`;
const stack = await LocalStack.start({
  rootDir: ROOT,
  basePort: Number(args["base-port"]),
  mode,
  kafkaBrokers: process.env.RECSYS_KAFKA_BROKERS,
  redisUrl: process.env.RECSYS_REDIS_URL,
  namespace: mode === "full" ? ns : "",
  stateDir: join(ROOT, "var", "bench", `feedback-${Date.now()}`),
  logDir: join(ROOT, "var", "log", "bench-feedback"),
  env: { RECSYS_WARMUP_REQUESTS: "5", RECSYS_LOG_LEVEL: "warn" },
  onProgress: say,
});
const feedback = createClient(FeedbackService, stack.gatewayTarget);
const results: Record<string, unknown> = {
  mode,
  machine: `${hostname()}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}`,
  date: new Date().toISOString(),
};
try {
  // 1. Ingest.
  say(`ingest: ${concurrency} callers, ${batch} event(s) per Report, ${seconds}s`);
  let events = 0;
  let failed = 0;
  const latencies: number[] = [];
  let seq = 0;
  const until = Date.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const evs = Array.from({ length: batch }, () => {
          const i = seq++;
          return { userId: `bench-user-${i % 5000}`, itemId: `item-${i % 9000}`, type: EventType.CLICK };
        });
        const s = performance.now();
        try {
          await feedback.report({ events: evs }, { timeoutMs: 10_000 });
          latencies.push(performance.now() - s);
          events += evs.length;
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  results.ingest = {
    concurrency,
    batch,
    seconds: Number(elapsed.toFixed(1)),
    eventsPerSecond: Math.round(events / elapsed),
    reportsPerSecond: Math.round(latencies.length / elapsed),
    failedReports: failed,
    reportLatencyMs: {
      p50: Number(quantile(latencies, 0.5).toFixed(2)),
      p99: Number(quantile(latencies, 0.99).toFixed(2)),
    },
  };
  say(JSON.stringify(results.ingest));

  // 2. Freshness (full mode: the stream service writes Redis, the gateway reads it).
  if (mode === "full") {
    const redis = await RedisUserStateStore.connect({
      url: process.env.RECSYS_REDIS_URL!,
      logger: createLogger("bench", "silent"),
      prefix: ns,
      timeoutMs: 1_000,
    });
    await sleep(3_000); // let the stream drain the ingest backlog first
    const loadPerSecond = Number(args.load);
    let loadRunning = true;
    let loadSeq = 0;
    const load = (async () => {
      // Background feedback at a steady rate, 10 events per Report.
      const interval = 10_000 / Math.max(1, loadPerSecond);
      while (loadRunning) {
        const evs = Array.from({ length: 10 }, () => {
          const i = loadSeq++;
          return { userId: `load-user-${i % 2000}`, itemId: `item-${i % 9000}`, type: EventType.CLICK };
        });
        void feedback.report({ events: evs }, { timeoutMs: 10_000 }).catch(() => {});
        await sleep(interval);
      }
    })();
    const probes = Number(args.probes);
    const fresh: number[] = [];
    let missed = 0;
    say(`freshness: ${probes} probe events under ~${loadPerSecond} events/s of background feedback`);
    for (let p = 0; p < probes; p++) {
      const user = `probe-user-${p}`;
      const item = `probe-item-${p}`;
      const s = performance.now();
      await feedback.report(
        { events: [{ userId: user, itemId: item, type: EventType.CLICK }] },
        { timeoutMs: 10_000 },
      );
      let seen = false;
      while (performance.now() - s < 10_000) {
        const state = await redis.get(user).catch(() => undefined);
        if (state?.history.some((h) => h.itemId === item)) {
          seen = true;
          break;
        }
        await sleep(2);
      }
      if (seen) fresh.push(performance.now() - s);
      else missed++;
      await sleep(20);
    }
    loadRunning = false;
    await load;
    await redis.close();
    fresh.sort((a, b) => a - b);
    results.freshness = {
      probes,
      backgroundEventsPerSecond: loadPerSecond,
      missedWithin10s: missed,
      reportToVisibleMs: {
        p50: Number(quantile(fresh, 0.5).toFixed(1)),
        p90: Number(quantile(fresh, 0.9).toFixed(1)),
        p99: Number(quantile(fresh, 0.99).toFixed(1)),
        max: Number((fresh.at(-1) ?? Number.NaN).toFixed(1)),
      },
    };
    say(JSON.stringify(results.freshness));
  }
} finally {
  feedback.close();
  await stack.stopAll();
}
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
