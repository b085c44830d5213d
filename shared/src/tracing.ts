/**
 * OpenTelemetry tracing, configured only by the standard OTEL_* variables.
 *
 * Tracing is on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and not switched off
 * (OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none). Then the first runtime
 * of the process starts @opentelemetry/sdk-node once: the exporter, protocol
 * (OTEL_EXPORTER_OTLP_PROTOCOL, default http/protobuf), sampler
 * (OTEL_TRACES_SAMPLER), batching (OTEL_BSP_*) and resource
 * (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) all come from the
 * environment. Only traces are exported: metrics stay on the Prometheus
 * endpoint and logs on stderr.
 *
 * Spans are made by the project's own RPC runtime rather than by
 * monkey-patching grpc-js: every call gets a CLIENT span where it is sent and
 * a SERVER span where it is handled, whichever transport carries it (gRPC, or
 * the in-process target of the co-located layout, which gRPC instrumentation
 * would never see). The W3C trace context travels in the gRPC metadata
 * (`traceparent`), and in-process through the async context. So one Recommend
 * is one trace with a span per stage in both layouts, and every log line
 * written while a span is active carries its traceId and spanId.
 *
 * When tracing is off none of this runs: the hot path checks one boolean.
 */
import { createRequire } from "node:module";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";

interface Sdk {
  start(): void;
  shutdown(): Promise<void>;
}

let sdk: Sdk | undefined;

/** Whether the OTEL_* variables ask for traces to be exported. */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((e) => e.trim().toLowerCase());
  if (exporters.includes("none")) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** True once the SDK runs in this process. */
export function tracingEnabled(): boolean {
  return sdk !== undefined;
}

/**
 * Starts the SDK if the environment asks for it (once per process; later
 * calls do nothing). `serviceName` is the resource's service.name unless
 * OTEL_SERVICE_NAME says otherwise; in the co-located layout it is the first
 * service of the process, and each span names its service in `recsys.service`.
 */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (sdk) return true;
  if (!tracingConfigured(env)) return false;
  // Loaded only when used: the SDK and its exporters are many modules.
  const { NodeSDK } = createRequire(import.meta.url)("@opentelemetry/sdk-node") as {
    NodeSDK: new (config: Record<string, unknown>) => Sdk;
  };
  sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME?.trim() || serviceName,
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return true;
}

/** Flushes and stops the exporter (at process shutdown). */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}

const tracer = () => trace.getTracer("recsys");

/** The ids of the span active here, for log lines. */
export function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  const span = trace.getSpan(context.active());
  if (!span) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

export interface RpcSpan {
  readonly span: Span;
  /** The context in which the call's work runs (children of this span). */
  readonly context: Context;
}

/** Reads `traceparent`/`tracestate` from gRPC metadata (`get(key)` returns values). */
const metadataGetter: TextMapGetter<{ get(key: string): unknown[] }> = {
  get: (carrier, key) => {
    const value = carrier.get(key)[0];
    return typeof value === "string" ? value : undefined;
  },
  keys: () => ["traceparent", "tracestate"],
};

/**
 * A SERVER span for one call, with its request id (`recsys.request_id`, the
 * `x-request-id` of the call) so a trace can be found from a log line or an
 * answer. `metadata` is the gRPC metadata of a remote call; an in-process
 * call has none and continues the caller's context.
 */
export function startServerSpan(
  method: string,
  service: string,
  requestId: string,
  metadata?: { get(key: string): unknown[] },
): RpcSpan {
  const parent = metadata ? propagation.extract(ROOT_CONTEXT, metadata, metadataGetter) : context.active();
  const span = tracer().startSpan(
    method,
    {
      kind: SpanKind.SERVER,
      attributes: {
        "rpc.system": "grpc",
        "rpc.method": method,
        "recsys.service": service,
        "recsys.request_id": requestId,
      },
    },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/** A CLIENT span for one outgoing call; `inject` writes its context into gRPC metadata. */
export function startClientSpan(method: string, transport: "grpc" | "in-process"): RpcSpan {
  const parent = context.active();
  const span = tracer().startSpan(
    method,
    {
      kind: SpanKind.CLIENT,
      attributes: { "rpc.system": "grpc", "rpc.method": method, "recsys.transport": transport },
    },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/** Writes the W3C trace context of `ctx` into gRPC metadata. */
export function injectTraceContext(ctx: Context, metadata: { set(key: string, value: string): void }): void {
  propagation.inject(ctx, metadata, { set: (carrier, key, value) => carrier.set(key, value) });
}

/** Ends an RPC span with the call's gRPC status code (0 = OK). */
export function endRpcSpan(span: Span, code: number, message?: string): void {
  span.setAttribute("rpc.grpc.status_code", code);
  if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.end();
}

/** Runs `fn` with `ctx` active (so its awaits, calls and log lines see the span). */
export function withContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** The active trace context as W3C headers, to carry it to another thread (undefined when off). */
export function traceCarrier(): Record<string, string> | undefined {
  if (!tracingEnabled()) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** Runs `fn` in the trace context a `traceCarrier` carried here. */
export function withTraceCarrier<T>(carrier: Record<string, string> | undefined, fn: () => T): T {
  if (!carrier || !tracingEnabled()) return fn();
  return context.with(propagation.extract(ROOT_CONTEXT, carrier), fn);
}
