/**
 * Worker thread that owns ONNX Runtime sessions. `run()` blocks its thread
 * for the whole inference, so inference never runs on a service's event
 * loop. Sessions are cached per (model file, providers); the two most recent
 * are kept so a hot swap can finish in-flight requests on the old version.
 */
import * as ort from "onnxruntime-node";
import { move, transferableSymbol, valueSymbol } from "piscina";

export interface TensorData {
  readonly type: "float32" | "int64" | "int32";
  readonly dims: readonly number[];
  /** Raw little-endian values (float32, int64 or int32): the first product(dims) of them. */
  readonly data: ArrayBuffer;
  /** The caller reuses this buffer: the worker moves it back with the result (RunResult.inputs). */
  readonly reusable?: boolean;
}

export interface RunTask {
  readonly modelPath: string;
  /** Preference order, e.g. ["cuda", "cpu"] or ["cpu"]. */
  readonly providers: readonly string[];
  readonly intraOpNumThreads: number;
  /** Sessions the worker keeps open, most recently used first (the pool's models and their previous versions). */
  readonly maxSessions?: number;
  readonly feeds: Record<string, TensorData>;
  /** URL of an OnnxProgram module: run it with `args` instead of one inference of `modelPath`. */
  readonly program?: string;
  readonly args?: unknown;
}

/** A model output on the worker, before it is copied for the caller. */
export interface OutputView {
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array | Int32Array;
}

/** What a program may do on the worker: inferences on the sessions of the pool's models. */
export interface OnnxProgramContext {
  /** Outputs of one inference can be fed back as inputs of the next as they are. */
  infer(
    modelPath: string,
    feeds: Record<string, TensorData | OutputView>,
  ): Promise<Record<string, OutputView>>;
}

/**
 * Several inferences with the logic between them in one task (one queue wait, one round trip),
 * e.g. a beam search that feeds each step's choice into the next: the default export of a module
 * the worker imports once. `transfer` lists buffers of `value` that move back to the caller.
 */
export type OnnxProgram<A, R> = (
  ctx: OnnxProgramContext,
  args: A,
) => Promise<{ value: R; transfer?: ArrayBuffer[] }>;

export interface ProgramResult<R> {
  readonly value: R;
  /** The provider of the last session the program ran on. */
  readonly provider: string;
  readonly fallbackReason?: string;
  /** Inference time of all the program's runs. */
  readonly inferenceMs: number;
  /** The program's inferences. */
  readonly runs: number;
}

export interface RunResult {
  readonly outputs: Record<string, TensorData>;
  /** The provider the session actually runs on. */
  readonly provider: string;
  /** Why a preferred provider was not used, when it was not. */
  readonly fallbackReason?: string;
  readonly inferenceMs: number;
  /** The reusable input buffers, moved back to the caller (no new external memory per run). */
  readonly inputs: ArrayBuffer[];
}

interface CachedSession {
  session: ort.InferenceSession;
  provider: string;
  fallbackReason?: string;
}

/** Sessions kept per worker when a task does not say (RunTask.maxSessions). */
const MAX_SESSIONS = 2;
const sessions = new Map<string, Promise<CachedSession>>();

async function openSession(task: RunTask): Promise<CachedSession> {
  const base = {
    intraOpNumThreads: task.intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all" as const,
  };
  const preferred = task.providers[0] ?? "cpu";
  if (preferred !== "cpu") {
    try {
      const session = await ort.InferenceSession.create(task.modelPath, {
        ...base,
        executionProviders: task.providers as string[],
      });
      return { session, provider: preferred };
    } catch (err) {
      // Asking for CUDA without its libraries throws instead of falling back.
      const session = await ort.InferenceSession.create(task.modelPath, {
        ...base,
        executionProviders: ["cpu"],
      });
      return { session, provider: "cpu", fallbackReason: err instanceof Error ? err.message : String(err) };
    }
  }
  const session = await ort.InferenceSession.create(task.modelPath, { ...base, executionProviders: ["cpu"] });
  return { session, provider: "cpu" };
}

function sessionFor(task: RunTask): Promise<CachedSession> {
  const key = `${task.modelPath}|${task.providers.join(",")}|${task.intraOpNumThreads}`;
  let entry = sessions.get(key);
  if (entry) {
    sessions.delete(key); // re-insert as most recent
    sessions.set(key, entry);
    return entry;
  }
  entry = openSession(task);
  entry.catch(() => sessions.delete(key));
  sessions.set(key, entry);
  while (sessions.size > (task.maxSessions ?? MAX_SESSIONS)) {
    const [oldestKey, oldest] = sessions.entries().next().value as [string, Promise<CachedSession>];
    sessions.delete(oldestKey);
    void oldest.then((s) => s.session.release()).catch(() => undefined);
  }
  return entry;
}

function toTensor(t: TensorData): ort.Tensor {
  const n = t.dims.reduce((a, b) => a * b, 1);
  switch (t.type) {
    case "float32":
      return new ort.Tensor("float32", new Float32Array(t.data, 0, n), t.dims);
    case "int64":
      return new ort.Tensor("int64", new BigInt64Array(t.data, 0, n), t.dims);
    case "int32":
      return new ort.Tensor("int32", new Int32Array(t.data, 0, n), t.dims);
  }
}

function viewTensor(t: OutputView): ort.Tensor {
  if (t.data instanceof Float32Array) return new ort.Tensor("float32", t.data, t.dims);
  if (t.data instanceof BigInt64Array) return new ort.Tensor("int64", t.data, t.dims);
  return new ort.Tensor("int32", t.data, t.dims);
}

/** A result whose buffers move (not copy) back to the calling thread. */
class Moved {
  constructor(
    private readonly value: RunResult | ProgramResult<unknown>,
    private readonly buffers: ArrayBuffer[],
  ) {}
  get [transferableSymbol](): ArrayBuffer[] {
    return this.buffers;
  }
  get [valueSymbol](): RunResult | ProgramResult<unknown> {
    return this.value;
  }
}

function fromTensor(t: ort.Tensor): TensorData {
  const data = t.data as Float32Array | BigInt64Array | Int32Array;
  const copy = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const type = t.type === "float32" || t.type === "int64" || t.type === "int32" ? t.type : "float32";
  return { type, dims: [...t.dims], data: copy as ArrayBuffer };
}

export default async function run(task: RunTask): Promise<RunResult | ProgramResult<unknown>> {
  if (task.program) return move(new Moved(...(await runProgram(task)))) as unknown as ProgramResult<unknown>;
  return move(new Moved(...(await infer(task)))) as unknown as RunResult;
}

const programs = new Map<string, Promise<OnnxProgram<unknown, unknown>>>();

async function runProgram(task: RunTask): Promise<[ProgramResult<unknown>, ArrayBuffer[]]> {
  const url = task.program!;
  let program = programs.get(url);
  if (!program) {
    program = import(url).then((m: { default: OnnxProgram<unknown, unknown> }) => m.default);
    program.catch(() => programs.delete(url));
    programs.set(url, program);
  }
  let provider = "";
  let fallbackReason: string | undefined;
  let inferenceMs = 0;
  let runs = 0;
  const ctx: OnnxProgramContext = {
    async infer(modelPath, feeds) {
      const cached = await sessionFor({ ...task, modelPath });
      provider = cached.provider;
      fallbackReason ??= cached.fallbackReason;
      const inputs: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) inputs[name] = "type" in t ? toTensor(t) : viewTensor(t);
      const started = performance.now();
      const results = await cached.session.run(inputs);
      inferenceMs += performance.now() - started;
      runs++;
      const out: Record<string, OutputView> = {};
      for (const [name, t] of Object.entries(results))
        out[name] = { dims: t.dims, data: t.data as Float32Array | BigInt64Array | Int32Array };
      return out;
    },
  };
  const { value, transfer = [] } = await (await program)(ctx, task.args);
  const result: ProgramResult<unknown> = {
    value,
    provider,
    inferenceMs,
    runs,
    ...(fallbackReason ? { fallbackReason } : {}),
  };
  return [result, transfer];
}

async function infer(task: RunTask): Promise<[RunResult, ArrayBuffer[]]> {
  const cached = await sessionFor(task);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(task.feeds)) feeds[name] = toTensor(t);
  const started = performance.now();
  const results = await cached.session.run(feeds);
  const inferenceMs = performance.now() - started;
  const outputs: Record<string, TensorData> = {};
  for (const [name, t] of Object.entries(results)) outputs[name] = fromTensor(t);
  const inputs = [...new Set(Object.values(task.feeds).flatMap((t) => (t.reusable ? [t.data] : [])))];
  const result: RunResult = {
    outputs,
    provider: cached.provider,
    inferenceMs,
    inputs,
    ...(cached.fallbackReason ? { fallbackReason: cached.fallbackReason } : {}),
  };
  return [result, [...inputs, ...Object.values(outputs).map((o) => o.data)]];
}
