/**
 * Feedback to a new model version serving, over the real processes (not a
 * test): the whole stack with the online trainer (services/online-trainer),
 * on a copy of the model store, driven by real users of the dataset.
 *
 * Each round:
 *   1. Recommend for real users through the gateway (each response is an
 *      impression), then Report clicks / likes / ratings on some of the shown
 *      items with the response's request id. Exactly as many items are shown
 *      as the trainer still needs for its next update
 *      (RECSYS_ONLINE_EVERY_SAMPLES, minus samples already waiting), so the
 *      round's last Report completes the triggering batch. T0 = its ack.
 *   2. feedback -> sample: until the online trainer has buffered the batch's
 *      last sample (recsys_online_samples_total{outcome="buffered"}, polled
 *      every 50 ms). The stream emits an impression's samples when its
 *      attribution window closes, so this is mostly RECSYS_ATTRIBUTION_WINDOW_MS.
 *   3. sample -> update started: the trainer's trigger tick and the wait for
 *      its feedback consumer (log line "online update started").
 *   4. update started -> publish: shard, Python online update, holdout check,
 *      export; publish = mtime of <store>/em3/CURRENT (os.replace). The
 *      Python process's own time is recsys_online_update_seconds.
 *   5. publish -> serving: the stage service's metrics polled every 100 ms
 *      until its recsys_model_version_info names the new version (model
 *      watcher poll, ONNX load, probe batch, swap). Not Recommend: polling
 *      it would add samples without feedback, and on a loaded machine the
 *      stage can answer with its fallback, which names no version.
 * "rejected" (holdout regression) and "skipped" are outcomes, reported as
 * such; the time to "serving" exists only for published rounds.
 *
 *   npm run bench:feedback -- --model-update              # full mode: Kafka + Redis started by the script
 *   npm run bench:feedback -- --model-update --mode embedded
 * Options: --rounds 3 --models em3 --every-samples 200 --min-samples 100
 *   --window-ms 2000 --model-poll-ms 100 --every-ms 3600000 --count 20
 *   --store var/models --timeout-s 1800 --round-timeout-s 600 --seed 1
 */
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LocalStack } from "@recsys/local";
import { createClient, currentVersion, loadInteractions, seededRandom } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import {
  FeedbackService,
  RecommendService,
} from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const { values: args } = parseArgs({
  options: {
    mode: { type: "string", default: "full" },
    rounds: { type: "string", default: "3" },
    models: { type: "string", default: "em3" },
    "every-samples": { type: "string", default: "200" },
    "min-samples": { type: "string", default: "100" },
    "every-ms": { type: "string", default: "3600000" },
    "window-ms": { type: "string", default: "2000" },
    "model-poll-ms": { type: "string", default: "100" },
    count: { type: "string", default: "20" },
    store: { type: "string", default: join(ROOT, "var", "models") },
    "timeout-s": { type: "string", default: "1800" },
    "round-timeout-s": { type: "string", default: "600" },
    seed: { type: "string", default: "1" },
    "base-port": { type: "string", default: "57551" },
    keep: { type: "boolean", default: false },
  },
});
const mode = args.mode === "embedded" ? "embedded" : "full";
const rounds = Number(args.rounds);
const models = args.models
  .split(",")
  .map((m) => m.trim())
  .filter(Boolean);
const everySamples = Number(args["every-samples"]);
const minSamples = Number(args["min-samples"]);
const windowMs = Number(args["window-ms"]);
const count = Number(args.count);
const deadline = Date.now() + Number(args["timeout-s"]) * 1000;
const roundTimeoutMs = Number(args["round-timeout-s"]) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (m: string) => process.stderr.write(`[bench] ${m}\n`);

/** Stage key of RecommendResponse.model_versions that serves each model the online trainer updates. */
const STAGE_OF: Record<string, string> = { em3: "rank", prerank: "prerank", kuaiformer: "recall.kuaiformer" };
/** The model whose time to serving is measured: em3 when updated, else the first one with a known stage. */
const watched = models.includes("em3") ? "em3" : models.find((m) => STAGE_OF[m]);
/** Copied into the benchmark's own store (the serving models, CURRENT versions only). */
const STORE_MODELS = ["em3", "prerank", "content", "kuaiformer", "sasrec", "swing"];

class Timeout extends Error {}
function checkDeadline(what: string): void {
  if (Date.now() > deadline)
    throw new Timeout(`total timeout (--timeout-s ${args["timeout-s"]}) while ${what}`);
}

const random = seededRandom(Number(args.seed));

// --- The benchmark's own model store: a copy of the serving versions. ---
const runId = `model-update-${Date.now()}`;
const stateDir = join(ROOT, "var", "bench", runId);
const store = join(stateDir, "models");
const sourceStore = resolve(args.store);
for (const m of STORE_MODELS) {
  const v = currentVersion(sourceStore, m);
  if (!v) {
    say(`${m}: no CURRENT version in ${sourceStore}, not copied`);
    continue;
  }
  cpSync(join(sourceStore, m, v), join(store, m, v), { recursive: true });
  writeFileSync(join(store, m, "CURRENT"), `${v}\n`);
  say(`${m}: ${v} copied`);
}
for (const m of models)
  if (!currentVersion(store, m)) throw new Error(`${m}: no serving version in ${sourceStore} to fine-tune`);
mkdirSync(join(ROOT, "var", "log", "bench-model-update"), { recursive: true });

// --- Reading the online trainer: Prometheus text and its JSON log. ---
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}
function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}
const metricValue = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
  s
    .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
    .reduce((a, x) => a + x.value, 0);

interface LogLine {
  readonly time: number;
  readonly msg: string;
  readonly [k: string]: unknown;
}
class LogReader {
  private offset: number;
  private rest = "";
  constructor(private readonly path: string) {
    this.offset = existsSync(path) ? statSync(path).size : 0;
  }
  read(): LogLine[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size <= this.offset) return [];
    const buf = Buffer.alloc(size - this.offset);
    const fd = openSync(this.path, "r");
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    const text = this.rest + buf.toString("utf8");
    this.offset = size;
    const lines = text.split("\n");
    this.rest = lines.pop() ?? "";
    const out: LogLine[] = [];
    for (const l of lines) {
      if (!l.startsWith("{")) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        // not a log record
      }
    }
    return out;
  }
}

interface Round {
  round: number;
  requests: number;
  shown: number;
  feedbackEvents: number;
  /** Samples waiting in the trainer before the round's traffic. */
  waiting: number;
  feedbackAckMs: number;
  samplesInMs?: number;
  updateStartMs?: number;
  updateSamples?: number;
  decisions: Record<string, string>;
  reason?: string;
  version?: string;
  parentVersion?: string;
  pythonSeconds?: number;
  decidedMs?: number;
  publishMs?: number;
  servingMs?: number;
  holdout?: unknown;
  note?: string;
}

const ns = `bench${Date.now()}.`;
const env: Record<string, string> = {
  RECSYS_WARMUP_REQUESTS: "5",
  RECSYS_LOG_LEVEL: "warn",
  RECSYS_ATTRIBUTION_WINDOW_MS: String(windowMs),
  RECSYS_MODEL_POLL_MS: args["model-poll-ms"],
  RECSYS_ONLINE_MODELS: models.join(","),
  RECSYS_ONLINE_EVERY_SAMPLES: String(everySamples),
  RECSYS_ONLINE_MIN_SAMPLES: String(minSamples),
  RECSYS_ONLINE_EVERY_MS: args["every-ms"],
};
const started = Date.now();
const stack = await LocalStack.start({
  rootDir: ROOT,
  basePort: Number(args["base-port"]),
  mode,
  kafkaBrokers: process.env.RECSYS_KAFKA_BROKERS,
  redisUrl: process.env.RECSYS_REDIS_URL,
  namespace: mode === "full" ? ns : "",
  stateDir,
  modelStore: store,
  logDir: join(ROOT, "var", "log", "bench-model-update"),
  catalog: false,
  onlineTrainer: true,
  startTimeoutMs: 180_000,
  env,
  serviceEnv: { "online-trainer": { RECSYS_LOG_LEVEL: "info" } },
  onProgress: say,
}).catch((err: unknown) => {
  if (!args.keep) rmSync(store, { recursive: true, force: true });
  throw err;
});
// Last resort: a loop that never reaches a deadline check still ends, with the stack stopped.
const hard = setTimeout(
  () => {
    say("hard timeout: stopping the stack");
    void stack.stopAll().finally(() => process.exit(3));
  },
  deadline - Date.now() + 120_000,
);
hard.unref();
say(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

const recommend = createClient(RecommendService, stack.gatewayTarget);
const feedback = createClient(FeedbackService, stack.gatewayTarget);
const trainerLog = new LogReader(stack.logFile("online-trainer"));
const metricsUrl = `http://127.0.0.1:${stack.metricsPort("online-trainer")}/metrics`;
const scrape = async (): Promise<Sample[]> => {
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) });
  return parseProm(await res.text());
};
const bufferedTotal = (s: Sample[]) => metricValue(s, "recsys_online_samples_total", { outcome: "buffered" });

const results: Round[] = [];
let failure: string | undefined;
try {
  // Real users, in a seeded random order.
  const interactions = await loadInteractions(join(ROOT, "data", "ml-latest-small"));
  const users = [...new Set(interactions.map((r) => r.userId))];
  for (let i = users.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [users[i], users[j]] = [users[j]!, users[i]!];
  }
  let nextUser = 0;

  /** Samples count as new for the trigger since the last attempt: buffered counter at the last "update started". */
  let bufferedAtAttempt = 0;
  const lines: LogLine[] = [];
  const drainLog = () => {
    for (const l of trainerLog.read()) {
      lines.push(l);
      if (l.msg === "online update started") say(`trainer: update started (${String(l.samples)} samples)`);
      else if (typeof l.model === "string" && l.msg.startsWith("online update of"))
        say(`trainer: ${l.msg}${l.reason ? ` (${String(l.reason)})` : ""}`);
    }
  };
  /** Waits until no sample arrived for `quietMs` (impressions' windows closed) and no update runs. */
  const settle = async (quietMs: number) => {
    let last = bufferedTotal(await scrape());
    let since = Date.now();
    for (;;) {
      checkDeadline("waiting for the samples to settle");
      await sleep(200);
      drainLog();
      const now = bufferedTotal(await scrape());
      const startedUpdates = lines.filter((l) => l.msg === "online update started").length;
      const finished = lines.filter(
        (l) => l.model === models.at(-1) && l.msg.startsWith("online update of"),
      ).length;
      if (now !== last || startedUpdates > finished) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) return now;
    }
  };

  // Warm-up impressions become samples too: let them arrive first.
  say(`waiting for the warm-up's samples (attribution window ${windowMs} ms)`);
  await sleep(windowMs);
  await settle(windowMs + 1_500);
  // (An update the warm-up alone triggered restarted the trainer's count.)
  if (lines.some((l) => l.msg === "online update started")) bufferedAtAttempt = bufferedTotal(await scrape());

  for (let r = 1; r <= rounds; r++) {
    checkDeadline(`starting round ${r}`);
    const roundDeadline = Math.min(deadline, Date.now() + roundTimeoutMs);
    const before = await scrape();
    const bufferedBefore = bufferedTotal(before);
    const waiting = bufferedBefore - bufferedAtAttempt;
    const need = Math.max(1, everySamples - waiting);
    const secondsBefore = metricValue(before, "recsys_online_update_seconds_sum", { model: watched ?? "" });
    const round: Round = {
      round: r,
      requests: 0,
      shown: 0,
      feedbackEvents: 0,
      waiting,
      feedbackAckMs: 0,
      decisions: {},
    };
    results.push(round);
    lines.length = 0;

    // 1. Traffic: impressions for exactly `need` samples, feedback on some of the shown items.
    say(`round ${r}: ${waiting} samples waiting, showing ${need} items`);
    while (round.shown < need) {
      checkDeadline("sending traffic");
      const userId = users[nextUser++ % users.length]!;
      const res = await recommend.recommend(
        { userId, count: Math.min(count, need - round.shown) },
        { timeoutMs: 10_000 },
      );
      if (res.items.length === 0) continue;
      round.requests++;
      round.shown += res.items.length;
      const events: Array<{
        userId: string;
        itemId: string;
        type: EventType;
        value: number;
        requestId: string;
      }> = [];
      const click = (itemId: string) => {
        events.push({ userId, itemId, type: EventType.CLICK, value: 0, requestId: res.requestId });
        const u = random();
        if (u < 0.4) {
          const stars = [3, 3.5, 4, 4.5, 5][Math.floor(random() * 5)]!;
          events.push({ userId, itemId, type: EventType.RATING, value: stars, requestId: res.requestId });
        } else if (u < 0.55) {
          events.push({ userId, itemId, type: EventType.LIKE, value: 0, requestId: res.requestId });
        }
      };
      // Position-biased clicks, at least one per list (each impression has both classes).
      res.items.forEach((it, pos) => {
        if (random() < 0.5 / (1 + 0.3 * pos)) click(it.itemId);
      });
      if (events.length === 0) click(res.items[Math.floor(random() * Math.min(3, res.items.length))]!.itemId);
      await feedback.report({ events }, { timeoutMs: 10_000 });
      round.feedbackAckMs = Date.now();
      round.feedbackEvents += events.length;
    }
    say(
      `round ${r}: ${round.requests} Recommend, ${round.shown} items shown, ${round.feedbackEvents} feedback events`,
    );

    // 2-5. Trainer: samples in, update started, each model's verdict; once the watched model
    // published, Recommend every 100 ms until its stage reports the new version.
    const outcomes = new Map<string, LogLine>();
    const stage = watched ? STAGE_OF[watched]! : "";
    let nextPoll = 0;
    const servingBefore = watched ? currentVersion(store, watched) : undefined;
    for (;;) {
      checkDeadline(`round ${r}: waiting for the update`);
      if (Date.now() > roundDeadline) {
        round.note = round.version
          ? `${round.version} not serving within --round-timeout-s`
          : "no verdict within --round-timeout-s";
        break;
      }
      const s = await scrape();
      const now = Date.now();
      if (round.samplesInMs === undefined && bufferedTotal(s) - bufferedBefore >= need)
        round.samplesInMs = now;
      drainLog();
      for (const l of lines) {
        if (l.msg === "online update started" && round.updateStartMs === undefined) {
          round.updateStartMs = l.time;
          round.updateSamples = Number(l.samples);
          bufferedAtAttempt = bufferedTotal(s);
        } else if (
          typeof l.model === "string" &&
          l.msg.startsWith("online update of") &&
          round.updateStartMs !== undefined &&
          !outcomes.has(l.model)
        ) {
          outcomes.set(l.model, l);
          const decision = String(l.decision ?? (l.msg.includes("timed out") ? "timeout" : "failed"));
          round.decisions[l.model] = decision;
          if (l.model !== watched) continue;
          round.decidedMs = l.time;
          round.reason =
            typeof l.reason === "string" ? l.reason : typeof l.err === "string" ? l.err : undefined;
          round.holdout = l.holdout;
          round.parentVersion = typeof l.parentVersion === "string" ? l.parentVersion : undefined;
          round.pythonSeconds =
            metricValue(s, "recsys_online_update_seconds_sum", { model: watched }) - secondsBefore;
          if (decision === "published" && typeof l.version === "string" && round.version !== l.version) {
            round.version = l.version;
            round.publishMs = l.time; // CURRENT moved on already: the verdict's log time
          }
        }
      }
      // Published = CURRENT replaced (os.replace): its mtime. Seen before the verdict's log
      // line (the Python process still has to exit), so the polls start at once.
      const cur = watched ? currentVersion(store, watched) : undefined;
      if (!round.version && cur && cur !== servingBefore) {
        round.version = cur;
        round.publishMs = statSync(join(store, watched!, "CURRENT")).mtimeMs;
      }
      if (round.version && round.servingMs === undefined && Date.now() >= nextPoll) {
        nextPoll = Date.now() + 100;
        try {
          // Serving = the stage service has swapped it in: its recsys_model_version_info gauge
          // (a Recommend naming it in model_versions says the same, but on a loaded machine the
          // stage may time out and answer with its fallback, which names no version).
          const service = stage.split(".")[0] as "rank";
          const text = await (await fetch(`http://127.0.0.1:${stack.metricsPort(service)}/metrics`)).text();
          const swapped = text
            .split("\n")
            .some(
              (l) => l.startsWith("recsys_model_version_info{") && l.includes(`version="${round.version}"`),
            );
          if (swapped) round.servingMs = Date.now();
        } catch (err) {
          say(`serving poll failed (retried): ${(err as Error).message}`);
        }
      }
      if (models.every((m) => outcomes.has(m)) && (!round.version || round.servingMs !== undefined)) break;
      await sleep(round.version && round.servingMs === undefined ? 10 : 50);
    }
    if (round.samplesInMs !== undefined && round.updateStartMs !== undefined)
      round.samplesInMs = Math.min(round.samplesInMs, round.updateStartMs);
    say(`round ${r}: ${JSON.stringify(round)}`);
    if (round.note) {
      failure = `round ${r}: ${round.note}`;
      break;
    }
    // The next round starts once this one's stray samples (the serving polls' impressions) arrived.
    if (r < rounds) await settle(windowMs + 1_500);
  }
} catch (err) {
  failure = err instanceof Error ? err.message : String(err);
  say(`failed: ${failure}`);
} finally {
  recommend.close();
  feedback.close();
  await stack.stopAll();
  clearTimeout(hard);
  if (!args.keep) rmSync(store, { recursive: true, force: true });
}

// --- Report. ---
const sec = (a?: number, b?: number) =>
  a === undefined || b === undefined ? "–" : `${((b - a) / 1000).toFixed(1)} s`;
const cpu = cpus()[0]?.model ?? "cpu";
const out: string[] = [];
out.push(
  `Command: \`node services/stream/dist/bench/model-update.js ${process.argv.slice(2).join(" ")}\`` +
    (mode === "full" ? " (Kafka + Redis from `npm run bench:feedback -- --model-update`)" : ""),
);
out.push(
  `Machine: ${cpu}, nproc ${availableParallelism()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `load average at the end ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
);
out.push(`Date: ${new Date().toISOString()}`);
out.push(
  `Settings: mode ${mode}, RECSYS_ONLINE_MODELS=${models.join(",")}, RECSYS_ONLINE_EVERY_SAMPLES=${everySamples}, ` +
    `RECSYS_ONLINE_MIN_SAMPLES=${minSamples}, RECSYS_ONLINE_EVERY_MS=${args["every-ms"]}, ` +
    `RECSYS_ATTRIBUTION_WINDOW_MS=${windowMs}, RECSYS_MODEL_POLL_MS=${args["model-poll-ms"]}, ${count} items per Recommend`,
);
out.push("");
out.push(
  `| round | samples | decision (${watched ?? "?"}) | feedback → sample | sample → update start | update start → publish | Python update | publish → serving | feedback → verdict | feedback → serving |`,
);
out.push("|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const others = Object.entries(r.decisions)
    .filter(([m]) => m !== watched)
    .map(([m, d]) => `${m} ${d}`);
  const decision = [watched ? (r.decisions[watched] ?? "none") : "?", ...others].join(", ");
  out.push(
    `| ${r.round} | ${r.updateSamples ?? "–"} | ${decision} | ${sec(r.feedbackAckMs, r.samplesInMs)} | ` +
      `${sec(r.samplesInMs, r.updateStartMs)} | ${sec(r.updateStartMs, r.publishMs)} | ` +
      `${r.pythonSeconds === undefined ? "–" : `${r.pythonSeconds.toFixed(1)} s`} | ${sec(r.publishMs, r.servingMs)} | ` +
      `${sec(r.feedbackAckMs, r.decidedMs)} | ${sec(r.feedbackAckMs, r.servingMs)} |`,
  );
}
for (const r of results) {
  const detail = [r.version ? `${r.parentVersion} → ${r.version}` : "", r.reason ?? "", r.note ?? ""]
    .filter(Boolean)
    .join("; ");
  if (detail) out.push(`- round ${r.round}: ${detail}`);
}
if (failure) out.push(`- **failed:** ${failure}`);
process.stdout.write(`${out.join("\n")}\n`);
say(JSON.stringify({ mode, machine: `${cpus().length} x ${cpu}`, rounds: results, failure }));
process.exit(failure ? 1 : 0);
