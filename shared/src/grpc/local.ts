/**
 * In-process transport: a service registered with `RpcServer.add` can also be
 * called from the same process without gRPC. A client created for the target
 * `in-process` (see `createClient`) finds the handler here and calls it
 * through the same server-side chain (deadline, load shedding, error mapping,
 * logs, latency histogram) with the request message itself: no serialisation,
 * no HTTP/2, no loopback socket.
 *
 * Used when several services share one process on one machine (the co-located
 * layout of deploy/local); on Kubernetes every service keeps its own pods and
 * talks gRPC.
 */
import { status } from "@grpc/grpc-js";
import { traceCarrier, withTraceCarrier } from "../tracing.js";
import { RpcError } from "./errors.js";

/** The client target that selects the in-process transport. */
export const IN_PROCESS_TARGET = "in-process";

export interface LocalCall {
  readonly request: unknown;
  readonly requestId: string;
  /** Absolute deadline, ms since epoch (Infinity when none). */
  readonly deadline: number;
  readonly signal?: AbortSignal;
}

export type LocalInvoker = (call: LocalCall) => Promise<unknown>;

/** Method path ("/pkg.Service/Method") -> the server's invoker. */
const registry = new Map<string, LocalInvoker>();

export function registerLocal(path: string, invoker: LocalInvoker): void {
  registry.set(path, invoker);
}

export function unregisterLocal(path: string): void {
  registry.delete(path);
}

/**
 * Calls a method registered in this process. Rejects with UNAVAILABLE when no
 * server here registered it, and with DEADLINE_EXCEEDED when the deadline
 * passes first (as a gRPC client would), whatever the handler does.
 */
export function callLocal(path: string, call: LocalCall): Promise<unknown> {
  const invoker = registry.get(path);
  if (!invoker) {
    return Promise.reject(new RpcError(status.UNAVAILABLE, `${path}: no server in this process`));
  }
  if (!Number.isFinite(call.deadline)) return invoker(call);
  return new Promise((resolve, reject) => {
    const left = call.deadline - Date.now();
    if (left <= 0) {
      reject(new RpcError(status.DEADLINE_EXCEEDED, "deadline exceeded before the call"));
      return;
    }
    const cancel = new AbortController();
    const onAbort = () => cancel.abort(call.signal?.reason);
    call.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => {
      const err = new RpcError(status.DEADLINE_EXCEEDED, "deadline exceeded");
      cancel.abort(err);
      reject(err);
    }, left);
    invoker({ ...call, signal: cancel.signal })
      .then(resolve, reject)
      .finally(() => {
        clearTimeout(timer);
        call.signal?.removeEventListener("abort", onAbort);
      });
  });
}

/**
 * Worker threads: a co-located process may run a stage on its own thread
 * (its own event loop, on another core). The stage's servers register in the
 * worker's copy of this module; `serveLocalToParent` (in the worker) answers
 * calls posted by the parent thread through the same chain, and
 * `forwardToWorker` (in the parent) registers an invoker per method path that
 * posts the call there. Requests and responses are protobuf-es messages,
 * plain objects that the structured clone copies; errors keep their gRPC code.
 */
interface CallMessage {
  readonly type: "call";
  readonly id: number;
  readonly path: string;
  readonly request: unknown;
  readonly requestId: string;
  readonly deadline: number;
  /** The caller's trace context (W3C headers), so the stage's span joins the request's trace. */
  readonly trace?: Record<string, string>;
}
type ReplyMessage =
  | { readonly type: "result"; readonly id: number; readonly response: unknown }
  | { readonly type: "error"; readonly id: number; readonly code: number; readonly message: string };

/** What both a worker's `parentPort` and the parent's `Worker` offer. */
export interface MessageChannelEnd {
  // biome-ignore lint/suspicious/noExplicitAny: the overloads of Worker and MessagePort take any
  on(event: string, listener: (message: any) => void): unknown;
  postMessage(message: unknown): void;
}

/** The method paths registered in this thread. */
export function localPaths(): string[] {
  return [...registry.keys()];
}

/** Worker side: answers the parent's calls with this thread's registered servers. */
export function serveLocalToParent(port: MessageChannelEnd): void {
  port.on("message", (msg: CallMessage | { type: string }) => {
    if (msg.type !== "call") return;
    const call = msg as CallMessage;
    withTraceCarrier(call.trace, () =>
      callLocal(call.path, { request: call.request, requestId: call.requestId, deadline: call.deadline }),
    ).then(
      (response) => port.postMessage({ type: "result", id: call.id, response } satisfies ReplyMessage),
      (err: unknown) =>
        port.postMessage({
          type: "error",
          id: call.id,
          code: err instanceof RpcError ? err.code : status.INTERNAL,
          message: err instanceof Error ? err.message : String(err),
        } satisfies ReplyMessage),
    );
  });
}

/** Parent side: calls to `paths` go to the worker behind `port`. */
export function forwardToWorker(port: MessageChannelEnd, paths: readonly string[]): void {
  let nextId = 0;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  port.on("message", (msg: ReplyMessage | { type: string }) => {
    if (msg.type !== "result" && msg.type !== "error") return;
    const reply = msg as ReplyMessage;
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if (reply.type === "result") w.resolve(reply.response);
    else w.reject(new RpcError(reply.code, reply.message));
  });
  for (const path of paths) {
    registerLocal(
      path,
      (call) =>
        new Promise((resolve, reject) => {
          const id = nextId++;
          waiting.set(id, { resolve, reject });
          port.postMessage({
            type: "call",
            id,
            path,
            request: call.request,
            requestId: call.requestId,
            deadline: call.deadline,
            trace: traceCarrier(),
          } satisfies CallMessage);
        }),
    );
  }
}
