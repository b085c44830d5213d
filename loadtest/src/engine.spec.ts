/**
 * The runner's open model against real grpc-js servers on loopback: send
 * counts, latency measured from the scheduled send (no coordinated omission),
 * late sends when the runner itself stalls, drops at maxVUs, thresholds.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { startEchoServer } from "./echo.js";
import { run } from "./engine.js";
import type { Options } from "./scenario.js";
import { seededRandom } from "./schedule.js";
import { summarize } from "./stats.js";
import {
  Channels,
  ECHO_PATH,
  type ExecContext,
  RecentRecommendations,
  type TrafficData,
} from "./workload.js";

/** An echo server that answers after `delayMs` without blocking its event loop. */
async function slowEcho(delayMs: number): Promise<{ target: string; close(): void }> {
  const id = (b: Buffer) => b;
  const server = new Server();
  server.addService(
    {
      echo: {
        path: ECHO_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      },
    },
    {
      echo: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) =>
        setTimeout(() => cb(null, call.request), delayMs),
    },
  );
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { target: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

describe("engine (open model)", () => {
  const channels = new Channels();
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let slow: Awaited<ReturnType<typeof slowEcho>>;
  const ctxFor = (target: string): ExecContext => ({
    data: { random: seededRandom(1) } as unknown as TrafficData,
    recent: new RecentRecommendations(),
    channels,
    target,
    catalogTarget: target,
    echoTarget: target,
    runId: "test",
  });
  const echoScenario = (extra: Record<string, unknown>): Options["scenarios"] => ({
    echo: { executor: "constant-arrival-rate", rate: 100, duration: "1s", exec: "echo", ...extra } as never,
  });

  before(async () => {
    echo = await startEchoServer();
    slow = await slowEcho(300);
    await channels.waitForReady(`127.0.0.1:${echo.port}`, 5_000);
    await channels.waitForReady(slow.target, 5_000);
  });
  after(async () => {
    channels.close();
    slow.close();
    await echo.close();
  });

  it("sends rate x duration requests and passes its thresholds", async () => {
    const r = await run({
      options: {
        scenarios: echoScenario({}),
        thresholds: {
          "grpc_req_duration{method:Echo}": ["p(99)<250"],
          grpc_req_failed: ["rate==0"],
          checks: ["rate==1"],
          "grpc_reqs{scenario:echo}": ["count==100"],
          dropped_iterations: ["count==0"],
        },
      },
      ctx: ctxFor(`127.0.0.1:${echo.port}`),
      capabilities: new Map(),
    });
    assert.equal(r.scenarios[0]!.requests, 100);
    assert.deepEqual(
      r.thresholds.filter((t) => !t.ok),
      [],
    );
    assert.ok(r.timelines[0]!.points.length >= 1);
    assert.ok(r.runner.cpuMsPerRequest > 0);
  });

  it("a failing threshold is reported as failed", async () => {
    const r = await run({
      options: {
        scenarios: echoScenario({ duration: "200ms" }),
        thresholds: { "grpc_req_duration{method:Echo}": ["max<0"] },
      },
      ctx: ctxFor(`127.0.0.1:${echo.port}`),
      capabilities: new Map(),
    });
    assert.equal(r.thresholds.length, 1);
    assert.equal(r.thresholds[0]!.ok, false);
  });

  it("measures from the scheduled send: a stall of the runner shows up as latency and late sends", async () => {
    // Block the runner's own event loop for 300 ms in the middle of the run.
    setTimeout(() => {
      const end = Date.now() + 300;
      while (Date.now() < end) {
        // busy: the runner falls behind its schedule
      }
    }, 400);
    const r = await run({
      options: { scenarios: echoScenario({}) },
      ctx: ctxFor(`127.0.0.1:${echo.port}`),
      capabilities: new Map(),
    });
    const s = r.scenarios[0]!;
    assert.equal(s.requests, 100, "every scheduled send is still made");
    assert.ok(s.late >= 20, `late sends counted: ${s.late}`);
    const lat = summarize(s.latency);
    const svc = summarize(s.service);
    assert.ok(lat.maxMs >= 250, `latency from the schedule includes the stall: max ${lat.maxMs}`);
    assert.ok(svc.p50Ms < lat.p99Ms, "service time (from the actual send) is what the server took");
  });

  it("slow answers do not slow the sends (open model); maxVUs caps in-flight and counts drops", async () => {
    const open = await run({
      options: { scenarios: echoScenario({}) },
      ctx: ctxFor(slow.target),
      capabilities: new Map(),
    });
    assert.equal(open.scenarios[0]!.requests, 100);
    assert.equal(open.scenarios[0]!.dropped, 0);
    assert.ok(summarize(open.scenarios[0]!.latency).p50Ms >= 300);
    assert.ok(open.wallMs < 1_800, `sends did not wait for answers: ${open.wallMs} ms`);

    const capped = await run({
      options: { scenarios: echoScenario({ maxVUs: 10 }), thresholds: { dropped_iterations: ["count==0"] } },
      ctx: ctxFor(slow.target),
      capabilities: new Map(),
    });
    const s = capped.scenarios[0]!;
    assert.ok(s.dropped >= 50, `dropped ${s.dropped}`);
    assert.equal(s.requests + s.dropped, 100);
    assert.equal(capped.thresholds[0]!.ok, false);
  });

  it("constant-vus is a closed loop: each VU waits for its answer", async () => {
    const r = await run({
      options: { scenarios: { vus: { executor: "constant-vus", vus: 2, duration: "1s", exec: "echo" } } },
      ctx: ctxFor(slow.target),
      capabilities: new Map(),
    });
    // 2 VUs x ~1 s / 300 ms per answer
    assert.ok(
      r.scenarios[0]!.requests >= 6 && r.scenarios[0]!.requests <= 10,
      `requests ${r.scenarios[0]!.requests}`,
    );
  });

  it("skips a scenario whose capability is missing, with the reason", async () => {
    const r = await run({
      options: {
        scenarios: {
          ...echoScenario({ duration: "100ms" }),
          catalog_upsert: {
            executor: "constant-arrival-rate",
            rate: 1,
            duration: "1s",
            exec: "catalogUpsert",
            requires: "catalog",
          },
        },
      },
      ctx: ctxFor(`127.0.0.1:${echo.port}`),
      capabilities: new Map([["catalog", { ok: false, why: "CatalogService/UpsertItems is UNIMPLEMENTED" }]]),
    });
    assert.equal(r.skipped.length, 1);
    assert.match(r.skipped[0]!.reason, /UNIMPLEMENTED/);
    assert.deepEqual(
      r.scenarios.map((s) => s.name),
      ["echo"],
    );
  });

  it("rejects malformed options with the field's path", async () => {
    await assert.rejects(
      run({
        options: {
          scenarios: { bad: { executor: "constant-arrival-rate", rate: -1, duration: "1s", exec: "echo" } },
        },
        ctx: ctxFor(`127.0.0.1:${echo.port}`),
        capabilities: new Map(),
      }),
      /scenarios\.bad\.rate/,
    );
  });
});
