/**
 * `npm start` (after scripts/setup.sh prepared everything): runs the whole
 * funnel on this machine with embedded defaults and says where it listens.
 * `--full` (npm run start:full, which starts Kafka and Redis first) runs it
 * on RECSYS_KAFKA_BROKERS and RECSYS_REDIS_URL with the stream service.
 * The online trainer runs by default with --full and on request otherwise:
 * `--online` / `--no-online`, or RECSYS_ONLINE=1 / 0.
 * Layout (stack.ts): `--layout colocated` (default on one machine: the gateway
 * calls its four stages in-process, which halves the CPU per request and
 * removes four gRPC hops, docs/benchmarks.md) or `--layout processes` (one
 * process per service, as on Kubernetes); or RECSYS_LAYOUT.
 * Ctrl-C stops every process.
 */
import { resolve } from "node:path";
import { LocalStack } from "./stack.js";

const rootDir = resolve(process.env.RECSYS_ROOT ?? process.cwd());
const basePort = Number(process.env.RECSYS_BASE_PORT ?? 50051);
const started = performance.now();
const say = (m: string) => process.stderr.write(`[start] ${m}\n`);

const full = process.argv.includes("--full");
const layoutArg = process.argv.indexOf("--layout");
const layout = (layoutArg >= 0 ? process.argv[layoutArg + 1] : process.env.RECSYS_LAYOUT) ?? "colocated";
if (layout !== "colocated" && layout !== "processes") {
  say(`--layout must be colocated or processes, not "${layout}"`);
  process.exit(2);
}
// Co-located stages that run on a worker thread of their own (a second event
// loop): recall by default, which raised the highest rate within p99 <= 100 ms
// from 40/s to 60/s on 2 cores (docs/benchmarks.md); "none" for none.
const threadsArg = process.argv.indexOf("--threads");
const threads = (
  (threadsArg >= 0 ? process.argv[threadsArg + 1] : process.env.RECSYS_THREADS) ??
  (layout === "colocated" ? "recall" : "none")
)
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s && s !== "none");
for (const t of threads) {
  if (!["recall", "prerank", "rank", "rerank"].includes(t)) {
    say(`--threads takes stages (recall, prerank, rank, rerank), not "${t}"`);
    process.exit(2);
  }
}
if (threads.length > 0 && layout !== "colocated") {
  say("--threads needs the colocated layout");
  process.exit(2);
}
const onlineEnv = process.env.RECSYS_ONLINE;
const online = process.argv.includes("--no-online")
  ? false
  : process.argv.includes("--online") || onlineEnv === "1" || (full && onlineEnv !== "0");
const stack = await LocalStack.start({
  rootDir,
  basePort,
  onProgress: say,
  mode: full ? "full" : "embedded",
  kafkaBrokers: process.env.RECSYS_KAFKA_BROKERS,
  redisUrl: process.env.RECSYS_REDIS_URL,
  onlineTrainer: online,
  layout,
  threads: threads as never,
});
const seconds = ((performance.now() - started) / 1000).toFixed(1);
process.stdout.write(
  `\nThe funnel is up (${seconds}s). Gateway: ${stack.gatewayTarget}  (recsys.recommend.v1.RecommendService)\n` +
    `  stages: recall ${stack.target("recall")}, prerank ${stack.target("prerank")}, rank ${stack.target("rank")}, rerank ${stack.target("rerank")}\n` +
    `  layout: ${layout === "colocated" ? `gateway and stages in one process, stages called in-process${threads.length ? ` (${threads.join(", ")} on a worker thread of its own)` : ""} (--layout processes: one process each)` : "one process per service, gRPC between them"}\n` +
    `  catalog: ${stack.target("catalog")}  (recsys.catalog.v1.CatalogService: item upserts)\n` +
    `  events: ${full ? `Kafka ${process.env.RECSYS_KAFKA_BROKERS}, Redis ${process.env.RECSYS_REDIS_URL}, stream ${stack.target("stream")}` : `embedded bus in ${stack.stateDir}/bus (stream processor inside the gateway)`}\n` +
    `  online trainer: ${online ? `${stack.target("online-trainer")} (shards and state in ${stack.stateDir}/online)` : "off (--online or RECSYS_ONLINE=1 to run it)"}\n` +
    `  metrics: ${stack.services.map((s) => `${s} :${stack.metricsPort(s)}`).join(", ")} (GET /metrics)\n` +
    `  logs: ${stack.logDir}\n\n` +
    `Try:  npm run recommend -- --user 1\n      npm run recommend -- --user 42 --count 5\n` +
    `      npm run recommend -- --user 42 --query "space adventure"\n` +
    `      npm run upsert -- --id my-film --title "The Toy Kingdom" --genres Animation,Children\n\nCtrl-C stops everything.\n`,
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  say("stopping...");
  await stack.stopAll();
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
