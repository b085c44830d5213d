import { status } from "@grpc/grpc-js";

/**
 * The one error type at the RPC edge. Anything else thrown by a handler is
 * wrapped once, as INTERNAL, with the cause kept for the log.
 */
export class RpcError extends Error {
  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RpcError";
  }
}

/** INVALID_ARGUMENT whose message starts with the offending field's name. */
export function invalidArgument(field: string, problem: string): RpcError {
  return new RpcError(status.INVALID_ARGUMENT, `${field}: ${problem}`);
}

export function notFound(what: string): RpcError {
  return new RpcError(status.NOT_FOUND, what);
}

export function resourceExhausted(what: string): RpcError {
  return new RpcError(status.RESOURCE_EXHAUSTED, what);
}

export function unavailable(what: string): RpcError {
  return new RpcError(status.UNAVAILABLE, what);
}

/** Maps anything thrown to an RpcError, keeping the original as `cause`. */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (isGrpcStatusError(err)) return new RpcError(err.code, err.details ?? err.message, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new RpcError(status.INTERNAL, `internal error: ${message}`, { cause: err });
}

export function isGrpcStatusError(err: unknown): err is Error & { code: status; details?: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === "number";
}

export function statusName(code: status): string {
  return status[code] ?? String(code);
}
