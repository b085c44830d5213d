/**
 * `npm start` (after scripts/setup.sh prepared everything): runs the whole
 * funnel on this machine with embedded defaults and says where it listens.
 * Ctrl-C stops every process.
 */
import { resolve } from "node:path";
import { LocalStack } from "./stack.js";

const rootDir = resolve(process.env.RECSYS_ROOT ?? process.cwd());
const basePort = Number(process.env.RECSYS_BASE_PORT ?? 50051);
const started = performance.now();
const say = (m: string) => process.stderr.write(`[start] ${m}\n`);

const stack = await LocalStack.start({ rootDir, basePort, onProgress: say });
const seconds = ((performance.now() - started) / 1000).toFixed(1);
process.stdout.write(
  `\nThe funnel is up (${seconds}s). Gateway: ${stack.gatewayTarget}  (recsys.recommend.v1.RecommendService)\n` +
    `  stages: recall ${stack.target("recall")}, prerank ${stack.target("prerank")}, rank ${stack.target("rank")}, rerank ${stack.target("rerank")}\n` +
    `  metrics: ${["gateway", "recall", "prerank", "rank", "rerank"].map((s) => `${s} :${stack.metricsPort(s as "gateway")}`).join(", ")} (GET /metrics)\n` +
    `  logs: ${stack.logDir}\n\n` +
    `Try:  npm run recommend -- --user 1\n      npm run recommend -- --user 42 --count 5\n\nCtrl-C stops everything.\n`,
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
