/**
 * Bridges protobuf-es v2 service descriptors to grpc-js. protobuf-es generates
 * no grpc-js code; the descriptor has everything needed: method paths and the
 * message schemas used as (de)serialisers.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

type UnaryMethod = { methodKind: "unary"; input: DescMessage; output: DescMessage };

/** What a handler sees besides its request. */
export interface CallContext {
  /** Request id from `x-request-id` metadata, or a new one. */
  readonly requestId: string;
  /** Absolute deadline (ms since epoch); Infinity when the caller set none. */
  readonly deadline: number;
  /** Aborted when the call is cancelled or its deadline passes. */
  readonly signal: AbortSignal;
  /** Milliseconds left before the deadline. */
  remainingMs(): number;
  /**
   * The handler answered but cut corners for lack of capacity (a stage timed out): adaptive
   * admission, where the method has it, lowers its limit as for a slow answer.
   */
  overloaded(): void;
}

export type UnaryHandler<M> = M extends {
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? (request: MessageShape<I>, ctx: CallContext) => Promise<MessageInitShape<O>> | MessageInitShape<O>
  : never;

/** Implementation of a generated service: one async function per unary method. */
export type ServiceImpl<S extends GenServiceMethods> = { [K in keyof S]: UnaryHandler<S[K]> };

export interface MethodInfo {
  /** e.g. "/recsys.rank.v1.RankService/Rank" */
  readonly path: string;
  /** e.g. "Rank" */
  readonly name: string;
  /** camelCase key used in ServiceImpl, e.g. "rank" */
  readonly localName: string;
  readonly input: DescMessage;
  readonly output: DescMessage;
}

export function methodsOf(service: GenService<GenServiceMethods>): MethodInfo[] {
  return service.methods.map((m) => {
    if (m.methodKind !== "unary") {
      throw new Error(`${service.typeName}.${m.name}: only unary methods are supported`);
    }
    return {
      path: `/${service.typeName}/${m.name}`,
      name: m.name,
      localName: m.localName,
      input: m.input,
      output: m.output,
    };
  });
}

function serializer<D extends DescMessage>(schema: D) {
  return (value: MessageShape<D>): Buffer => {
    const bytes = toBinary(schema, value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> => fromBinary(schema, bytes);
}

/**
 * A request that is not a valid message of its type (truncated, invalid UTF-8 in a string, ...).
 * The server answers it with INVALID_ARGUMENT instead of grpc-js's INTERNAL.
 */
export class UndecodableRequest {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {}
}

function requestDeserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> | UndecodableRequest => {
    try {
      return fromBinary(schema, bytes);
    } catch (err) {
      return new UndecodableRequest(schema.typeName, err instanceof Error ? err.message : String(err));
    }
  };
}

/** grpc-js ServiceDefinition for a protobuf-es service. */
export function grpcServiceDefinition(service: GenService<GenServiceMethods>): ServiceDefinition {
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const m of methodsOf(service)) {
    def[m.localName] = {
      path: m.path,
      requestStream: false,
      responseStream: false,
      requestSerialize: serializer(m.input) as (v: unknown) => Buffer,
      requestDeserialize: requestDeserializer(m.input),
      responseSerialize: ((v: MessageShape<DescMessage>) => serializer(m.output)(v)) as (
        v: unknown,
      ) => Buffer,
      responseDeserialize: deserializer(m.output),
    };
  }
  return def as ServiceDefinition;
}

/** Completes a handler's init-shaped return value into a full message. */
export function completeMessage<D extends DescMessage>(
  schema: D,
  value: MessageInitShape<D>,
): MessageShape<D> {
  return create(schema, value);
}

export type { UnaryMethod };
