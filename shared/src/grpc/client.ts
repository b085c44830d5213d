/**
 * Typed grpc-js clients for protobuf-es services. Every call carries a
 * deadline and the request id. Targets may be `dns:///host:port`; the channel
 * uses round-robin over all resolved addresses, because gRPC connections are
 * long-lived and a single connection would pin all traffic to one pod.
 * The target `in-process` calls a server registered in this process directly
 * (local.ts): the same handler chain, without serialisation or a socket.
 */
import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { endRpcSpan, injectTraceContext, startClientSpan, tracingEnabled, withContext } from "../tracing.js";
import { grpcServiceDefinition, methodsOf } from "./adapter.js";
import { callLocal, IN_PROCESS_TARGET } from "./local.js";

export interface CallOptions {
  /** Relative timeout in ms. */
  timeoutMs?: number;
  /** Absolute deadline (ms since epoch); the earlier of this and timeoutMs wins. */
  deadline?: number;
  requestId?: string;
  signal?: AbortSignal;
}

type ClientMethod<M> = M extends { input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
  : never;

export type TypedClient<S extends GenServiceMethods> = { [K in keyof S]: ClientMethod<S[K]> } & {
  /** Closes the channel. */
  close(): void;
  /** Resolves when the channel is connected, rejects after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void>;
};

export interface ClientOptions {
  /** Default timeout when a call gives none. */
  defaultTimeoutMs?: number;
  maxReceiveMessageBytes?: number;
}

const ROUND_ROBIN_SERVICE_CONFIG = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  target: string,
  options: ClientOptions = {},
): TypedClient<S> {
  if (target === IN_PROCESS_TARGET) return createLocalClient(service, options);
  const client = new Client(target, credentials.createInsecure(), {
    "grpc.service_config": ROUND_ROBIN_SERVICE_CONFIG,
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 16 * 1024 * 1024,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2_000,
  });
  const definition = grpcServiceDefinition(service as GenService<GenServiceMethods>);
  const out: Record<string, unknown> = {
    close: () => client.close(),
    waitForReady: (timeoutMs: number) =>
      new Promise<void>((resolve, reject) =>
        client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
      ),
  };
  for (const method of methodsOf(service as GenService<GenServiceMethods>)) {
    const def = definition[method.localName];
    if (!def) continue;
    out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions: CallOptions = {}) =>
      new Promise((resolve, reject) => {
        const metadata = new Metadata();
        if (callOptions.requestId) metadata.set("x-request-id", callOptions.requestId);
        const deadline = callDeadline(callOptions, options);
        if (callOptions.signal?.aborted) {
          reject(callOptions.signal.reason);
          return;
        }
        const traced = tracingEnabled() ? startClientSpan(method.path, "grpc") : undefined;
        if (traced) injectTraceContext(traced.context, metadata);
        const call = client.makeUnaryRequest(
          method.path,
          def.requestSerialize,
          def.responseDeserialize,
          create(method.input, request),
          metadata,
          { deadline },
          (err: ServiceError | null, value?: unknown) => {
            if (traced) endRpcSpan(traced.span, err ? err.code : 0, err?.details);
            if (err) reject(err);
            else resolve(value);
          },
        );
        callOptions.signal?.addEventListener("abort", () => call.cancel(), { once: true });
      });
  }
  return out as TypedClient<S>;
}

function callDeadline(callOptions: CallOptions, options: ClientOptions): number {
  const timeout = callOptions.timeoutMs ?? options.defaultTimeoutMs;
  let deadline = callOptions.deadline ?? Number.POSITIVE_INFINITY;
  if (timeout !== undefined) deadline = Math.min(deadline, Date.now() + timeout);
  return deadline;
}

function createLocalClient<S extends GenServiceMethods>(
  service: GenService<S>,
  options: ClientOptions,
): TypedClient<S> {
  const out: Record<string, unknown> = {
    close: () => {},
    waitForReady: async () => {},
  };
  for (const method of methodsOf(service as GenService<GenServiceMethods>)) {
    out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions: CallOptions = {}) => {
      if (callOptions.signal?.aborted) return Promise.reject(callOptions.signal.reason);
      const call = () =>
        callLocal(method.path, {
          request: create(method.input, request),
          requestId: callOptions.requestId ?? "",
          deadline: callDeadline(callOptions, options),
          signal: callOptions.signal,
        });
      if (!tracingEnabled()) return call();
      // The stage's SERVER span becomes a child of this one through the async context.
      const traced = startClientSpan(method.path, "in-process");
      return withContext(traced.context, call).then(
        (value) => {
          endRpcSpan(traced.span, 0);
          return value;
        },
        (err: unknown) => {
          const code =
            typeof (err as { code?: unknown })?.code === "number" ? (err as { code: number }).code : 2;
          endRpcSpan(traced.span, code, err instanceof Error ? err.message : String(err));
          throw err;
        },
      );
    };
  }
  return out as TypedClient<S>;
}

/** The typed client of a generated service const, e.g. `ClientOf<typeof RankService>`. */
export type ClientOf<T> = T extends GenService<infer S> ? TypedClient<S> : never;
