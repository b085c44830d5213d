/**
 * End to end, tracing: with an OTLP endpoint set by the standard OTEL_*
 * variables, one Recommend is one trace holding a SERVER span for the gateway
 * and one for each of the four stages, each stage's span a descendant of the
 * gateway's, in both layouts. The collector is a small OTLP/HTTP (JSON)
 * receiver in this file: it speaks the protocol a real collector speaks. The
 * services' log lines for that request carry the trace id. Needs the test
 * models (`npm test` builds them).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "@recsys/shared";
import { RecommendService } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import { LocalStack, type StackLayout } from "./stack.js";
import { relaxedBudgetEnv } from "./testing.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const BASE_PORT = Number(process.env.RECSYS_TRACING_BASE_PORT ?? 56551);

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: { stringValue?: string } }>;
  serviceName: string;
}

const SPAN_KIND_SERVER = 2;

/** An OTLP/HTTP receiver (JSON encoding): collects every span it is sent. */
async function startCollector(): Promise<{ server: Server; endpoint: string; spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans?: Array<{
          resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> };
          scopeSpans?: Array<{ spans?: OtlpSpan[] }>;
        }>;
      };
      for (const rs of body.resourceSpans ?? []) {
        const serviceName =
          rs.resource?.attributes?.find((a) => a.key === "service.name")?.value.stringValue ?? "";
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? []) spans.push({ ...s, serviceName });
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { server, endpoint: `http://127.0.0.1:${port}`, spans };
}

const STAGE_METHODS = [
  "RecallService/Recall",
  "PrerankService/Prerank",
  "RankService/Rank",
  "RerankService/Rerank",
];

const LAYOUTS: Array<{ layout: StackLayout; threads: Array<"recall">; name: string }> = [
  { layout: "colocated", threads: [], name: "colocated" },
  { layout: "colocated", threads: ["recall"], name: "colocated-recall-thread" },
  { layout: "processes", threads: [], name: "processes" },
];

for (const [i, { layout, threads, name }] of LAYOUTS.entries()) {
  describe(`tracing, ${name} layout`, { concurrency: false }, () => {
    let stack: LocalStack;
    let collector: Awaited<ReturnType<typeof startCollector>>;
    const logDir = join(ROOT, "var", "log", `e2e-tracing-${name}`);

    before(async () => {
      collector = await startCollector();
      const stateDir = mkdtempSync(join(tmpdir(), `recsys-tracing-${layout}-`));
      stack = await LocalStack.start({
        rootDir: ROOT,
        basePort: BASE_PORT + i * 20,
        modelStore: resolve(ROOT, process.env.RECSYS_TEST_MODEL_STORE ?? "var/test-models"),
        logDir,
        stateDir,
        serviceEnv: relaxedBudgetEnv(stateDir),
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_BSP_SCHEDULE_DELAY: "100",
          RECSYS_LOG_LEVEL: "debug",
        },
        catalog: false,
        layout,
        threads,
      });
    });

    after(async () => {
      await stack?.stopAll();
      collector?.server.close();
    });

    it("gives one Recommend one trace with a server span per stage, and the trace id in its log lines", async () => {
      const client = createClient(RecommendService, stack.gatewayTarget);
      const requestId = `trace-${name}-${Date.now()}`;
      try {
        const res = await client.recommend({ userId: "15", count: 10 }, { timeoutMs: 5_000, requestId });
        assert.equal(res.items.length, 10);
      } finally {
        client.close();
      }
      // The services' own start-up calls are traced too: find this request's span by its request id.
      const findRoot = () =>
        collector.spans.find(
          (s) =>
            s.kind === SPAN_KIND_SERVER &&
            s.name === "RecommendService/Recommend" &&
            s.attributes?.some((a) => a.key === "recsys.request_id" && a.value.stringValue === requestId),
        );
      const deadline = Date.now() + 10_000;
      let trace: OtlpSpan[] = [];
      while (Date.now() < deadline) {
        const root = findRoot();
        trace = root ? collector.spans.filter((s) => s.traceId === root.traceId) : [];
        if (STAGE_METHODS.every((m) => trace.some((s) => s.kind === SPAN_KIND_SERVER && s.name === m))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const root = findRoot();
      assert.ok(root, `no gateway Recommend span for ${requestId} among ${collector.spans.length} spans`);
      const byId = new Map(trace.map((s) => [s.spanId, s]));
      const servers = trace.filter((s) => s.kind === SPAN_KIND_SERVER).map((s) => s.name);
      // Exactly one server span for the gateway and one per stage: nothing else joined this trace.
      assert.deepEqual(servers.sort(), ["RecommendService/Recommend", ...STAGE_METHODS].sort());
      for (const method of STAGE_METHODS) {
        const span = trace.find((s) => s.kind === SPAN_KIND_SERVER && s.name === method);
        assert.ok(span, `${method}: no server span`);
        // Walk up the parents: every stage span descends from the gateway's Recommend span.
        let at: OtlpSpan | undefined = span;
        while (at && at.spanId !== root.spanId) at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined;
        assert.ok(at, `${method} is not under the gateway's Recommend span`);
      }

      const logFiles =
        layout === "colocated" ? ["gateway"] : ["gateway", "recall", "prerank", "rank", "rerank"];
      for (const service of logFiles) {
        const lines = readFileSync(join(logDir, `${service}.log`), "utf8")
          .split("\n")
          .filter((l) => l.includes(requestId))
          .map((l) => JSON.parse(l) as { traceId?: string; msg?: string });
        assert.ok(lines.length > 0, `${service}: no log line for the request`);
        for (const line of lines)
          assert.equal(line.traceId, root.traceId, `${service}: ${JSON.stringify(line)}`);
      }
    });
  });
}
