import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { credentials, makeGenericClientConstructor, status } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { RerankService } from "../gen/recsys/rerank/v1/rerank_service_pb.js";
import { createLogger } from "../log.js";
import { Metrics } from "../metrics.js";
import type { AdmissionOptions } from "./admission.js";
import { createClient } from "./client.js";
import { invalidArgument } from "./errors.js";
import { RpcServer } from "./server.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A real server on a free port whose Rerank handler behaves as the request's `query` says. */
async function startServer(
  options: { maxConcurrentCalls?: number; admission?: Record<string, AdmissionOptions> } = {},
) {
  const metrics = new Metrics("test");
  const server = new RpcServer({
    name: "test",
    logger: createLogger("test", "silent"),
    metrics,
    maxConcurrentCalls: options.maxConcurrentCalls ?? 64,
    maxReceiveMessageBytes: 2048,
    shutdownGraceMs: 2_000,
    ...(options.admission ? { admission: options.admission } : {}),
  });
  server.add(RerankService, {
    async rerank(req, ctx) {
      if (req.query === "bad") throw invalidArgument("count", "must be positive");
      if (req.query === "crash") throw new Error("something broke");
      if (req.query.startsWith("sleep:")) await sleep(Number(req.query.slice(6)));
      return { policyVersion: `${ctx.requestId}:${Number.isFinite(ctx.deadline) ? "deadline" : "none"}` };
    },
  });
  const port = await server.listen("127.0.0.1:0");
  server.setServing(true);
  const client = createClient(RerankService, `127.0.0.1:${port}`);
  return { server, client, metrics, port };
}

describe("RpcServer", () => {
  const opened: Array<{ server: RpcServer; client: { close(): void } }> = [];
  after(async () => {
    for (const o of opened) {
      o.client.close();
      await o.server.shutdown();
    }
  });

  it("health answers NOT_SERVING until the service says it is ready", async () => {
    const server = new RpcServer({
      name: "h",
      logger: createLogger("h", "silent"),
      metrics: new Metrics("h"),
    });
    server.add(RerankService, { rerank: () => ({}) });
    const port = await server.listen("127.0.0.1:0");
    const Health = makeGenericClientConstructor(healthService as never, "Health");
    const health = new Health(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as {
      check(
        req: { service: string },
        cb: (err: Error | null, res: { status: string | number }) => void,
      ): void;
      close(): void;
    };
    const check = (service: string) =>
      new Promise<string | number>((resolve, reject) =>
        health.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))),
      );
    const NOT_SERVING = [2, "NOT_SERVING"];
    const SERVING = [1, "SERVING"];
    assert.ok(NOT_SERVING.includes(await check("")));
    assert.ok(NOT_SERVING.includes(await check("recsys.rerank.v1.RerankService")));
    server.setServing(true);
    assert.ok(SERVING.includes(await check("")));
    assert.ok(SERVING.includes(await check("recsys.rerank.v1.RerankService")));
    health.close();
    await server.shutdown();
  });

  it("passes the request id and deadline to handlers", async () => {
    const s = await startServer();
    opened.push(s);
    const res = await s.client.rerank({ query: "" }, { requestId: "req-1", timeoutMs: 1000 });
    assert.equal(res.policyVersion, "req-1:deadline");
  });

  it("maps a thrown RpcError to its code and anything else to INTERNAL", async () => {
    const s = await startServer();
    opened.push(s);
    await assert.rejects(s.client.rerank({ query: "bad" }), (e: { code: number; details: string }) => {
      return e.code === status.INVALID_ARGUMENT && e.details === "count: must be positive";
    });
    await assert.rejects(s.client.rerank({ query: "crash" }), (e: { code: number; details: string }) => {
      return e.code === status.INTERNAL && /something broke/.test(e.details);
    });
    const text = await s.metrics.registry.metrics();
    assert.match(
      text,
      /recsys_grpc_server_handling_seconds_count\{service="test",method="RerankService\/Rerank",code="INVALID_ARGUMENT"\} 1/,
    );
  });

  it("rejects a request over the size limit with RESOURCE_EXHAUSTED", async () => {
    const s = await startServer();
    opened.push(s);
    await assert.rejects(
      s.client.rerank({ query: "x".repeat(10_000) }),
      (e: { code: number }) => e.code === status.RESOURCE_EXHAUSTED,
    );
  });

  it("sheds load beyond maxConcurrentCalls with RESOURCE_EXHAUSTED", async () => {
    const s = await startServer({ maxConcurrentCalls: 1 });
    opened.push(s);
    const slow = s.client.rerank({ query: "sleep:200" });
    await sleep(50);
    await assert.rejects(
      s.client.rerank({ query: "" }),
      (e: { code: number }) => e.code === status.RESOURCE_EXHAUSTED,
    );
    await slow;
  });

  it("adaptive admission: under a flood, calls past the limit are refused at once and the admitted ones answer", async () => {
    const s = await startServer({ admission: { Rerank: { targetMs: 100, initialLimit: 4 } } });
    opened.push(s);
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const t0 = performance.now();
        try {
          await s.client.rerank({ query: "sleep:150" }, { timeoutMs: 5_000 });
          return { code: status.OK, ms: performance.now() - t0 };
        } catch (e) {
          return { code: (e as { code: number }).code, ms: performance.now() - t0 };
        }
      }),
    );
    const ok = outcomes.filter((o) => o.code === status.OK);
    const refused = outcomes.filter((o) => o.code === status.RESOURCE_EXHAUSTED);
    assert.equal(ok.length, 4, "the limit's worth answered");
    assert.equal(refused.length, 36, "the rest refused, nothing else");
    assert.ok(Math.max(...refused.map((o) => o.ms)) < 140, "refused before the admitted ones finished");
    const text = await s.metrics.registry.metrics();
    assert.match(
      text,
      /recsys_admission_refused_total\{[^}]*method="RerankService\/Rerank"[^}]*reason="limit"[^}]*\} 36/,
    );
    assert.match(text, /recsys_admission_limit\{[^}]*method="RerankService\/Rerank"[^}]*\} [0-9]+/);
    // slow answers while the limit was in use lowered it
    assert.match(text, /recsys_admission_limit\{[^}]*method="RerankService\/Rerank"[^}]*\} [23]\b/);
  });

  it("answers INVALID_ARGUMENT, not INTERNAL, to a request that is not a valid message", async () => {
    const s = await startServer();
    opened.push(s);
    const Raw = makeGenericClientConstructor(
      {
        rerank: {
          path: "/recsys.rerank.v1.RerankService/Rerank",
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      "Raw",
    );
    const raw = new Raw(`127.0.0.1:${s.port}`, credentials.createInsecure()) as unknown as {
      rerank(req: Buffer, cb: (err: { code: number; details: string } | null) => void): void;
      close(): void;
    };
    // field 6 (query, a string) of length 2 holding bytes that are not UTF-8; then a truncated field
    for (const bytes of [Buffer.from([0x32, 0x02, 0xff, 0xfe]), Buffer.from([0x32, 0x10, 0x61])]) {
      const err = await new Promise<{ code: number; details: string } | null>((resolve) =>
        raw.rerank(bytes, resolve),
      );
      assert.equal(err?.code, status.INVALID_ARGUMENT, err?.details);
      assert.match(err!.details, /^request: is not a valid recsys\.rerank\.v1\.RerankRequest/);
    }
    raw.close();
  });

  it("answers DEADLINE_EXCEEDED to the caller when the handler is too slow", async () => {
    const s = await startServer();
    opened.push(s);
    await assert.rejects(
      s.client.rerank({ query: "sleep:300" }, { timeoutMs: 50 }),
      (e: { code: number }) => e.code === status.DEADLINE_EXCEEDED,
    );
  });

  it("drains in-flight calls on shutdown and refuses new ones", async () => {
    const s = await startServer();
    const inFlight = s.client.rerank({ query: "sleep:300" });
    await sleep(50);
    const shutdown = s.server.shutdown();
    const res = await inFlight;
    assert.ok(res.policyVersion.length > 0, "the in-flight call completed");
    await shutdown;
    await assert.rejects(
      s.client.rerank({ query: "" }, { timeoutMs: 500 }),
      (e: { code: number }) => e.code === status.UNAVAILABLE || e.code === status.DEADLINE_EXCEEDED,
    );
    s.client.close();
  });
});
