/**
 * End to end, co-located layout: the gateway and the four stages in one
 * process, the gateway calling its stages in-process, called over gRPC as a
 * product backend would. Needs the test models (`npm test` builds them).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ClientOf, createClient, EventType } from "@recsys/shared";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import {
  FeedbackService,
  RecommendService,
} from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { checkHealth } from "./health.js";
import { LocalStack, STAGES } from "./stack.js";
import { relaxedBudgetEnv } from "./testing.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const BASE_PORT = Number(process.env.RECSYS_COLOCATED_BASE_PORT ?? 56351);

/** Every file under `dir`, concatenated: the embedded bus's segments. */
function readTree(dir: string): string {
  let out = "";
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out += statSync(path).isDirectory() ? readTree(path) : readFileSync(path, "latin1");
  }
  return out;
}

// Both ways of hosting a stage in the gateway's process: on the gateway's own
// thread, and recall on a worker thread of its own (RECSYS_THREADS / --threads).
for (const [variant, threads] of [
  ["all stages on the gateway's thread", []],
  ["recall on its own worker thread", ["recall"]],
] as const) {
  describe(`co-located layout (gateway and stages in one process): ${variant}`, {
    concurrency: false,
  }, () => {
    let stack: LocalStack;
    let stateDir: string;
    let recommend: ClientOf<typeof RecommendService>;
    let feedback: ClientOf<typeof FeedbackService>;

    before(async () => {
      stateDir = mkdtempSync(join(tmpdir(), "recsys-colocated-"));
      stack = await LocalStack.start({
        rootDir: ROOT,
        basePort: BASE_PORT + 20 * threads.length,
        modelStore: resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models"),
        logDir: join(stateDir, "log"), // this run's logs only
        stateDir,
        serviceEnv: relaxedBudgetEnv(stateDir),
        catalog: false,
        layout: "colocated",
        threads,
      });
      recommend = createClient(RecommendService, stack.gatewayTarget);
      feedback = createClient(FeedbackService, stack.gatewayTarget);
    });

    after(async () => {
      recommend?.close();
      feedback?.close();
      await stack?.stopAll();
    });

    it("runs the gateway and the four stages in one process", () => {
      const pid = stack.pid("gateway");
      assert.ok(pid);
      for (const s of STAGES) assert.equal(stack.pid(s), pid, `${s} shares the gateway's process`);
      assert.deepEqual(stack.processes, ["gateway"]);
      assert.equal(stack.processLabel("gateway"), "gateway+recall+prerank+rank+rerank");
      const onThreads = readFileSync(join(stateDir, "log", "gateway.log"), "utf8")
        .split("\n")
        .filter((l) => l.includes("stage runs on its own thread"))
        .map((l) => (JSON.parse(l) as { stage: string }).stage);
      assert.deepEqual(onThreads, [...threads]);
    });

    it("loads the catalogue and content vectors once for the stages on the gateway's thread", () => {
      const lines = readFileSync(join(stateDir, "log", "gateway.log"), "utf8")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { name: string; msg: string });
      // prerank opens the item tables first; rank, rerank and the gateway get the same ones
      const shared = lines.filter((l) => l.msg === "item tables shared with another service of this process");
      assert.deepEqual(
        shared.map((l) => l.name),
        ["rank", "rerank", "gateway"],
      );
      const followers = lines.filter((l) => l.msg === "items follower started").map((l) => l.name);
      assert.deepEqual(followers, ["prerank"], "one items follower for the three stages that follow");
    });

    it("answers Recommend through every stage's model, without fallbacks", async () => {
      const res = await recommend.recommend({ userId: "15", count: 20 }, { timeoutMs: 5_000 });
      assert.equal(res.items.length, 20);
      assert.equal(new Set(res.items.map((i) => i.itemId)).size, 20);
      assert.deepEqual(
        res.degradations.filter((d) => d.endsWith("_fallback")),
        [],
        `degradations: ${res.degradations.join(", ")}`,
      );
      for (const stage of ["prerank", "rank", "rerank"]) {
        assert.ok(res.modelVersions[stage], `${stage} version reported`);
        assert.ok(
          !res.modelVersions[stage]!.startsWith("fallback:"),
          `${stage}: ${res.modelVersions[stage]}`,
        );
      }
      assert.ok(Object.keys(res.modelVersions).some((k) => k.startsWith("recall.")));
    });

    it("the stages' handlers did the work, and each stage still answers gRPC on its own port", async () => {
      const metrics = await fetch(`http://127.0.0.1:${stack.metricsPort("rank")}/metrics`).then((r) =>
        r.text(),
      );
      const handled = metrics
        .split("\n")
        .filter(
          (l) => l.startsWith("recsys_grpc_server_handling_seconds_count{") && l.includes("RankService/Rank"),
        )
        .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
      assert.ok(handled >= 1, "rank's handler recorded the in-process calls");
      for (const s of STAGES) assert.equal(await checkHealth(stack.target(s)), "SERVING", s);
      const recall = createClient(RecallService, stack.target("recall"));
      try {
        const res = await recall.recall(
          { user: { userId: "15" }, maxCandidates: 50, scene: "home_feed" },
          { timeoutMs: 5_000 },
        );
        assert.ok(res.candidates?.itemIds, "recall answers over gRPC too");
      } finally {
        recall.close();
      }
    });

    it("stops the gateway before its stages: accepted feedback is on the bus after shutdown", async () => {
      const user = `colocated-e2e-${process.pid}`;
      const ack = await feedback.report(
        { events: [{ userId: user, itemId: "1", type: EventType.CLICK }] },
        { timeoutMs: 5_000 },
      );
      assert.equal(ack.eventIds.length, 1);
      await stack.stopAll();
      assert.equal(stack.pid("gateway"), undefined, "the process exited");
      assert.ok(readTree(join(stateDir, "bus")).includes(user), "the feedback event reached the bus");
    });
  });
}
