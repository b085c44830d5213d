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
