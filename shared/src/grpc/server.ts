/**
 * Server start-up shared by every service: typed unary handlers behind one
 * interceptor chain (request id, deadline, load shedding, error mapping,
 * structured logs, latency histogram), grpc.health.v1 that answers
 * NOT_SERVING until the service says it is ready, server reflection, a
 * Prometheus endpoint, and graceful shutdown that drains in-flight calls.
 */
import { randomUUID } from "node:crypto";
import { type DescFile, type DescMessage, toBinary } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { endRpcSpan, type RpcSpan, startServerSpan, tracingEnabled, withContext } from "../tracing.js";
import {
  type CallContext,
  completeMessage,
  grpcServiceDefinition,
  methodsOf,
  type ServiceImpl,
  UndecodableRequest,
} from "./adapter.js";
import { AdaptiveLimiter, type AdmissionOptions } from "./admission.js";
import { invalidArgument, RpcError, statusName, toRpcError } from "./errors.js";
import { type LocalInvoker, registerLocal } from "./local.js";

export interface RpcServerOptions {
  /** Service name used in logs and metrics, e.g. "rank". */
  readonly name: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Largest accepted request in bytes; larger ones get RESOURCE_EXHAUSTED. */
  readonly maxReceiveMessageBytes?: number;
  /** Calls handled at once before new ones are shed with RESOURCE_EXHAUSTED. */
  readonly maxConcurrentCalls?: number;
  /**
   * Adaptive admission per method name (e.g. "Recommend"): each listed method gets its own
   * concurrency limit that follows its latency (admission.ts), so one method's load cannot take
   * another's capacity, and calls beyond the limit are refused at once with RESOURCE_EXHAUSTED.
   */
  readonly admission?: Readonly<Record<string, AdmissionOptions>>;
  /** How long shutdown waits for in-flight calls before cancelling them. */
  readonly shutdownGraceMs?: number;
  /** Connections are closed (gracefully) after this age so clients re-resolve. */
  readonly maxConnectionAgeMs?: number;
}

const REQUEST_ID_KEY = "x-request-id";

export class RpcServer {
  private readonly server: Server;
  private readonly health: HealthImplementation;
  private readonly serviceNames: string[] = [];
  private readonly files = new Map<string, DescFile>();
  private inFlight = 0;
  private readonly limiters = new Map<string, AdaptiveLimiter>();
  private draining = false;
  private port = 0;

  constructor(private readonly options: RpcServerOptions) {
    this.server = new Server({
      "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
      "grpc.max_send_message_length": 16 * 1024 * 1024,
      // Clients re-resolve DNS only when a connection ends: capping connection
      // age lets round-robin clients discover pods added by autoscaling.
      "grpc.max_connection_age_ms": options.maxConnectionAgeMs ?? 5 * 60_000,
      "grpc.max_connection_age_grace_ms": 30_000,
    });
    this.health = new HealthImplementation({ "": "NOT_SERVING" });
    this.health.addToServer(this.server);
  }

  /** Registers a service implementation. Call before `listen`. */
  add<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): this {
    const handlers: UntypedServiceImplementation = {};
    for (const method of methodsOf(service as GenService<GenServiceMethods>)) {
      const fn = (impl as Record<string, (req: unknown, ctx: CallContext) => unknown>)[method.localName];
      if (typeof fn !== "function") throw new Error(`${service.typeName}: no handler for ${method.name}`);
      const label = `${service.name}/${method.name}`;
      const admission = this.options.admission?.[method.name];
      if (admission) {
        const limiter = new AdaptiveLimiter({ maxLimit: this.options.maxConcurrentCalls, ...admission });
        this.limiters.set(label, limiter);
        this.options.metrics.admissionLimit.set({ method: label }, limiter.limit);
      }
      handlers[method.localName] = this.wrap(label, method.output, fn.bind(impl));
      registerLocal(method.path, this.local(label, method.output, fn.bind(impl)));
    }
    this.server.addService(grpcServiceDefinition(service as GenService<GenServiceMethods>), handlers);
    this.serviceNames.push(service.typeName);
    this.health.setStatus(service.typeName, "NOT_SERVING");
    collectFiles(service.file, this.files);
    return this;
  }

  /** Binds `address` (host:port; port 0 picks one) and starts serving RPCs. Health stays NOT_SERVING. */
  async listen(address: string): Promise<number> {
    const reflectionRoot: Record<string, { fileDescriptorProtos: Buffer[] }> = {};
    for (const [name, file] of this.files) {
      reflectionRoot[name] = {
        fileDescriptorProtos: [Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto))],
      };
    }
    new ReflectionService(reflectionRoot as never).addToServer(this.server);
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.options.logger.info({ address, port: this.port }, "grpc server listening");
    return this.port;
  }

  get boundPort(): number {
    return this.port;
  }

  /** Flips grpc.health.v1 for the whole server and each registered service. */
  setServing(serving: boolean): void {
    const value = serving && !this.draining ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", value);
    for (const name of this.serviceNames) this.health.setStatus(name, value);
  }

  /** Stops accepting calls, waits for in-flight ones (up to the grace period), then closes. */
  async shutdown(): Promise<void> {
    this.draining = true;
    this.setServing(false);
    const grace = this.options.shutdownGraceMs ?? 5_000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.options.logger.warn({ inFlight: this.inFlight }, "shutdown grace period over, cancelling calls");
        this.server.forceShutdown();
        resolve();
      }, grace);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** grpc-js handler: request id and deadline from the call, then the shared chain. */
  private wrap(
    methodLabel: string,
    output: DescMessage,
    handler: (req: unknown, ctx: CallContext) => unknown,
  ): (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void {
    return (call, callback) => {
      const requestIdValue = call.metadata.get(REQUEST_ID_KEY)[0];
      const requestId =
        typeof requestIdValue === "string" && requestIdValue.length > 0 ? requestIdValue : randomUUID();
      const rawDeadline = call.getDeadline();
      const deadline = rawDeadline instanceof Date ? rawDeadline.getTime() : Number(rawDeadline);
      const cancel = this.handle(
        methodLabel,
        output,
        handler,
        call.request,
        requestId,
        deadline,
        call.metadata,
        (err, value) => {
          if (!err) {
            callback(null, value);
            return;
          }
          const trailer = new Metadata();
          trailer.set(REQUEST_ID_KEY, requestId);
          callback({ code: err.code, details: err.message, metadata: trailer });
        },
      );
      // grpc-js also emits "cancelled" when the stream closes after a completed call;
      // `cancel` ignores that case without building errors (measurable CPU under load).
      call.on("cancelled", cancel);
    };
  }

  /** In-process invoker (see local.ts): the same chain, with the request message itself. */
  private local(
    methodLabel: string,
    output: DescMessage,
    handler: (req: unknown, ctx: CallContext) => unknown,
  ): LocalInvoker {
    return (call) =>
      new Promise((resolve, reject) => {
        const cancel = this.handle(
          methodLabel,
          output,
          handler,
          call.request,
          call.requestId || randomUUID(),
          call.deadline,
          undefined,
          (err, value) => (err ? reject(err) : resolve(value)),
        );
        if (call.signal?.aborted) cancel();
        else call.signal?.addEventListener("abort", cancel, { once: true });
      });
  }

  /**
   * The chain every call goes through, whatever the transport: deadline
   * (abort signal), draining, load shedding, the handler, error mapping,
   * logs, the latency histogram and, when tracing is on, a SERVER span (its
   * parent from `metadata` on a gRPC call, from the caller's async context on
   * an in-process one). `done` is called exactly once. Returns a cancel
   * function (a no-op once the call has finished).
   */
  private handle(
    methodLabel: string,
    output: DescMessage,
    handler: (req: unknown, ctx: CallContext) => unknown,
    request: unknown,
    requestId: string,
    deadline: number,
    metadata: Metadata | undefined,
    done: (err: RpcError | null, response?: unknown) => void,
  ): () => void {
    const { logger, metrics, maxConcurrentCalls = 256 } = this.options;
    const started = performance.now();
    const traced: RpcSpan | undefined = tracingEnabled()
      ? startServerSpan(methodLabel, this.options.name, requestId, metadata)
      : undefined;
    const abort = new AbortController();
    let finished = false;
    let deadlineTimer: NodeJS.Timeout | undefined;
    const limiter = this.limiters.get(methodLabel);
    let admitted: { inFlightAtStart: number } | undefined;
    let overloaded = false;

    const finish = (err: RpcError | null, response?: unknown) => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      clearTimeout(deadlineTimer);
      const code = err ? err.code : status.OK;
      const elapsedMs = performance.now() - started;
      if (limiter && admitted) {
        const short = code === status.DEADLINE_EXCEEDED || code === status.RESOURCE_EXHAUSTED;
        limiter.release(elapsedMs, overloaded || short, admitted.inFlightAtStart);
        metrics.admissionLimit.set({ method: methodLabel }, limiter.limit);
      }
      metrics.rpcDuration.observe({ method: methodLabel, code: statusName(code) }, elapsedMs / 1000);
      if (traced) endRpcSpan(traced.span, code, err?.message);
      if (err) {
        const level = code === status.INTERNAL || code === status.UNKNOWN ? "error" : "warn";
        logger[level](
          { requestId, method: methodLabel, code: statusName(code), elapsedMs, err: err.cause ?? undefined },
          err.message,
        );
        done(err);
      } else {
        logger.debug({ requestId, method: methodLabel, elapsedMs }, "ok");
        done(null, response);
      }
    };
    const cancel = () => {
      if (finished) return;
      const cancelled = new RpcError(status.CANCELLED, "cancelled by caller");
      abort.abort(cancelled);
      finish(cancelled);
    };

    this.inFlight++;
    if (Number.isFinite(deadline)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        finish(new RpcError(status.DEADLINE_EXCEEDED, "deadline already passed on arrival"));
        return cancel;
      }
      deadlineTimer = setTimeout(
        () => abort.abort(new RpcError(status.DEADLINE_EXCEEDED, "deadline exceeded")),
        left,
      );
    }
    if (this.draining) {
      finish(new RpcError(status.UNAVAILABLE, "server is shutting down"));
      return cancel;
    }
    if (this.inFlight > maxConcurrentCalls) {
      metrics.degradations.inc({ kind: "load_shed" });
      finish(
        new RpcError(
          status.RESOURCE_EXHAUSTED,
          `overloaded: more than ${maxConcurrentCalls} calls in flight`,
        ),
      );
      return cancel;
    }
    if (request instanceof UndecodableRequest) {
      finish(invalidArgument("request", `is not a valid ${request.typeName}: ${request.reason}`));
      return cancel;
    }
    if (limiter) {
      const left = Number.isFinite(deadline) ? deadline - Date.now() : Number.POSITIVE_INFINITY;
      const decision = limiter.acquire(left);
      if (!decision.admitted) {
        metrics.admissionRefused.inc({ method: methodLabel, reason: decision.why });
        finish(
          new RpcError(
            status.RESOURCE_EXHAUSTED,
            decision.why === "limit"
              ? `overloaded: ${methodLabel} is at its concurrency limit (${limiter.limit}); retry with backoff`
              : `overloaded: ${Math.round(left)} ms left before the deadline, ${methodLabel} needs at least ${Math.round(limiter.fastestMs)} ms now`,
          ),
        );
        return cancel;
      }
      admitted = decision;
    }
    const ctx: CallContext = {
      requestId,
      deadline,
      signal: abort.signal,
      remainingMs: () => (Number.isFinite(deadline) ? deadline - Date.now() : Number.POSITIVE_INFINITY),
      overloaded: () => {
        overloaded = true;
      },
    };
    if (traced) withContext(traced.context, () => this.run(handler, request, ctx, output, finish));
    else this.run(handler, request, ctx, output, finish);
    return cancel;
  }

  /** Calls the handler and completes the call with its result or error. */
  private run(
    handler: (req: unknown, ctx: CallContext) => unknown,
    request: unknown,
    ctx: CallContext,
    output: DescMessage,
    finish: (err: RpcError | null, response?: unknown) => void,
  ): void {
    let result: unknown;
    try {
      result = handler(request, ctx);
    } catch (err) {
      finish(toRpcError(err));
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        try {
          finish(null, completeMessage(output, value as never));
        } catch (err) {
          finish(toRpcError(err));
        }
      },
      (err: unknown) => finish(toRpcError(err)),
    );
  }
}

function collectFiles(file: DescFile, into: Map<string, DescFile>): void {
  if (into.has(file.name)) return;
  into.set(file.name, file);
  for (const dep of file.dependencies) collectFiles(dep, into);
}
