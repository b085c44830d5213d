/**
 * ONNX inference off the event loop: a small pool of worker threads (piscina),
 * each owning ONNX Runtime sessions. On 2 cores, one intra-op thread per
 * session gave far better p99 than ONNX Runtime's default.
 */
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import type { ProgramResult, RunResult, RunTask, TensorData } from "./worker.js";

export type { OnnxProgram, OnnxProgramContext, OutputView, ProgramResult } from "./worker.js";
export type { RunResult, TensorData };

export interface OnnxPoolOptions {
  /** Worker threads (default 1). */
  readonly threads?: number;
  readonly intraOpNumThreads?: number;
  /** "cuda" to prefer the CUDA execution provider, falling back to CPU. */
  readonly executionProvider?: "cpu" | "cuda";
  /** Tasks queued beyond this are rejected (the caller degrades). */
  readonly maxQueue?: number;
  /**
   * ONNX sessions each worker keeps open (default 2): at least the graphs the pool serves, twice
   * that so a hot swap can finish in-flight requests on the previous version.
   */
  readonly maxSessions?: number;
}

export class OnnxPool {
  private readonly pool: Piscina<RunTask, RunResult | ProgramResult<unknown>>;
  readonly providers: readonly string[];
  private readonly intraOpNumThreads: number;
  private readonly maxSessions: number;

  constructor(options: OnnxPoolOptions = {}) {
    const threads = options.threads ?? 1;
    this.pool = new Piscina({
      filename: fileURLToPath(new URL("./worker.js", import.meta.url)),
      minThreads: threads,
      maxThreads: threads,
      maxQueue: options.maxQueue ?? 256,
      idleTimeout: 60_000,
    });
    this.providers = options.executionProvider === "cuda" ? ["cuda", "cpu"] : ["cpu"];
    this.intraOpNumThreads = options.intraOpNumThreads ?? 1;
    this.maxSessions = options.maxSessions ?? 2;
  }

  /**
   * Runs one inference. There is deliberately no abort: piscina aborts a
   * running task by terminating its worker thread, and terminating a thread
   * inside ONNX Runtime's run() aborts the whole process (seen in the hot-swap
   * test). Callers drop late results instead.
   */
  run(modelPath: string, feeds: Record<string, TensorData>): Promise<RunResult> {
    const transferList = Object.values(feeds).map((f) => f.data);
    return this.pool.run(
      {
        modelPath,
        providers: this.providers,
        intraOpNumThreads: this.intraOpNumThreads,
        maxSessions: this.maxSessions,
        feeds,
      },
      { transferList },
    ) as Promise<RunResult>;
  }

  /**
   * Runs an OnnxProgram (the default export of the module at `program`) with `args` on a worker,
   * next to the sessions it uses: several inferences and the logic between them cost one queue
   * wait and one round trip. `transferList` moves buffers of `args` to the worker.
   */
  runProgram<A, R>(program: URL, args: A, transferList: ArrayBuffer[] = []): Promise<ProgramResult<R>> {
    return this.pool.run(
      {
        modelPath: "",
        providers: this.providers,
        intraOpNumThreads: this.intraOpNumThreads,
        maxSessions: this.maxSessions,
        feeds: {},
        program: program.href,
        args,
      },
      { transferList },
    ) as Promise<ProgramResult<R>>;
  }

  get queueSize(): number {
    return this.pool.queueSize;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/**
 * Reusable buffers for large inputs. A fresh ArrayBuffer per request (about 1 MB of candidate
 * content vectors for prerank at 600 candidates) is external memory to V8, and its growth made
 * the ONNX worker run a ~3 ms full GC about every 40 requests (docs/benchmarks.md). The worker
 * moves a run's input buffers back with its result (RunResult.inputs); `release` them here.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();

  constructor(private readonly keepPerSize = 4) {}

  /** A zeroed buffer of at least `bytes` bytes (sizes are powers of two, from 4 KiB). */
  take(bytes: number): ArrayBuffer {
    let size = 4096;
    while (size < bytes) size *= 2;
    const buf = this.free.get(size)?.pop();
    if (!buf) return new ArrayBuffer(size);
    new Uint8Array(buf, 0, bytes).fill(0);
    return buf;
  }

  release(buffers: readonly ArrayBuffer[]): void {
    for (const buf of buffers) {
      if (buf.byteLength < 4096 || (buf.byteLength & (buf.byteLength - 1)) !== 0) continue;
      const list = this.free.get(buf.byteLength) ?? [];
      if (list.length < this.keepPerSize) list.push(buf);
      this.free.set(buf.byteLength, list);
    }
  }
}

export function int64Tensor(values: BigInt64Array, dims: number[]): TensorData {
  return { type: "int64", dims, data: values.buffer as ArrayBuffer };
}

export function float32Tensor(values: Float32Array, dims: number[]): TensorData {
  return { type: "float32", dims, data: values.buffer as ArrayBuffer };
}
