import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { RankService } from "../gen/recsys/rank/v1/rank_service_pb.js";
import { RerankService } from "../gen/recsys/rerank/v1/rerank_service_pb.js";
import { createLogger } from "../log.js";
import { Metrics } from "../metrics.js";
import { createClient } from "./client.js";
import { invalidArgument, isGrpcStatusError } from "./errors.js";
import { IN_PROCESS_TARGET } from "./local.js";
import { RpcServer } from "./server.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejection(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(isGrpcStatusError(err), `expected a status error, got ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail("expected the call to fail");
}

describe("in-process transport", () => {
  const metrics = new Metrics("local-test");
  const server = new RpcServer({
    name: "local-test",
    logger: createLogger("local-test", "silent"),
    metrics,
    maxConcurrentCalls: 2,
  });
  let aborted = 0;
  server.add(RerankService, {
    async rerank(req, ctx) {
      if (req.query === "bad") throw invalidArgument("count", "must be positive");
      if (req.query.startsWith("sleep:")) {
        ctx.signal.addEventListener("abort", () => aborted++);
        await sleep(Number(req.query.slice(6)));
      }
      return {
        policyVersion: `${ctx.requestId}|${req.count}|${Number.isFinite(ctx.deadline) ? "deadline" : "none"}`,
      };
    },
  });
  const client = createClient(RerankService, IN_PROCESS_TARGET);

  it("calls the handler registered in this process, with the request id and deadline", async () => {
    const res = await client.rerank({ count: 7 }, { requestId: "req-1", timeoutMs: 1_000 });
    assert.equal(res.policyVersion, "req-1|7|deadline");
    const noDeadline = await client.rerank({ count: 3 });
    assert.match(noDeadline.policyVersion, /\|3\|none$/);
  });

  it("goes through the server chain: handler errors keep their code and field, latency is recorded", async () => {
    const err = await rejection(client.rerank({ query: "bad" }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /^count: /);
    const text = await metrics.registry.metrics();
    const count = (code: string) =>
      text
        .split("\n")
        .filter(
          (l) =>
            l.startsWith("recsys_grpc_server_handling_seconds_count{") &&
            l.includes('method="RerankService/Rerank"') &&
            l.includes(`code="${code}"`),
        )
        .map((l) => Number(l.split(" ").at(-1)));
    assert.deepEqual(count("INVALID_ARGUMENT"), [1]);
    assert.equal(count("OK").length, 1);
  });

  it("fails with DEADLINE_EXCEEDED at the deadline and aborts the handler's signal", async () => {
    const t0 = Date.now();
    const err = await rejection(client.rerank({ query: "sleep:300" }, { timeoutMs: 40 }));
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 250, "the caller must not wait for the slow handler");
    await sleep(10);
    assert.ok(aborted >= 1, "the handler's abort signal fired");
  });

  it("sheds load over maxConcurrentCalls with RESOURCE_EXHAUSTED", async () => {
    const calls = [1, 2, 3].map(() =>
      client.rerank({ query: "sleep:50" }).then(
        () => "ok",
        (e: { code: number }) => e.code,
      ),
    );
    const outcomes = await Promise.all(calls);
    assert.deepEqual(outcomes.filter((o) => o === "ok").length, 2);
    assert.ok(outcomes.includes(status.RESOURCE_EXHAUSTED));
  });

  it("answers UNAVAILABLE for a service no server in this process registered", async () => {
    const rank = createClient(RankService, IN_PROCESS_TARGET);
    const err = await rejection(rank.rank({}));
    assert.equal(err.code, status.UNAVAILABLE);
    assert.match(err.message, /RankService\/Rank: no server in this process/);
  });

  it("answers UNAVAILABLE once the server is shutting down", async () => {
    await server.shutdown();
    const err = await rejection(client.rerank({ count: 1 }));
    assert.equal(err.code, status.UNAVAILABLE);
  });
});
