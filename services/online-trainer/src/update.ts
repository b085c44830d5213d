/**
 * One online update of one model: runs the Python trainer
 *
 *   <python> -m recsys_trainer online --model <m> --store <store> --data <data>
 *            --shard <file> --tolerance <t>          (PYTHONPATH=<trainer dir>)
 *
 * which prints one JSON object on stdout:
 *   {"decision": "published"|"rejected"|"skipped", "reason", "parent_version",
 *    "version" (when published), "holdout", "samples", "seconds"}
 * A non-zero exit, a timeout or output without that object is an UpdateError.
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import type { PythonCommand } from "./config.js";

export const DECISIONS = ["published", "rejected", "skipped"] as const;
export type Decision = (typeof DECISIONS)[number];

export interface UpdateResult {
  readonly decision: Decision;
  readonly reason: string;
  readonly parentVersion?: string;
  readonly version?: string;
  readonly seconds?: number;
  /** The whole object the trainer printed (holdout metrics, sample counts, ...). */
  readonly raw: Readonly<Record<string, unknown>>;
}

export class UpdateError extends Error {
  override readonly name = "UpdateError";
  constructor(
    message: string,
    readonly kind: "failed" | "timeout",
    /** The last lines the trainer wrote on stderr. */
    readonly stderrTail = "",
    readonly exitCode: number | null = null,
  ) {
    super(message);
  }
}

export interface UpdateOptions extends PythonCommand {
  readonly store: string;
  readonly data: string;
  readonly tolerance: number;
  readonly timeoutMs: number;
  /** Extra environment of the trainer process. */
  readonly env?: Readonly<Record<string, string>>;
  /** Aborting kills the trainer (shutdown). */
  readonly signal?: AbortSignal;
  /** Each line the trainer writes on stderr (its progress log). */
  readonly onStderrLine?: (line: string) => void;
}

/** The trainer's command line for one model and shard. */
export function updateArgs(o: UpdateOptions, model: string, shard: string): string[] {
  return [
    "-m",
    "recsys_trainer",
    "online",
    "--model",
    model,
    "--store",
    resolve(o.store),
    "--data",
    resolve(o.data),
    "--shard",
    resolve(shard),
    "--tolerance",
    String(o.tolerance),
  ];
}

const MAX_STDOUT_BYTES = 4 * 1024 * 1024;
const STDERR_TAIL_LINES = 40;
const KILL_GRACE_MS = 5_000;

export function runOnlineUpdate(o: UpdateOptions, model: string, shard: string): Promise<UpdateResult> {
  return new Promise<UpdateResult>((resolvePromise, reject) => {
    if (o.signal?.aborted) return reject(new UpdateError("aborted before start", "failed"));
    const pythonPath = [o.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(":");
    const child = spawn(o.python, updateArgs(o, model, shard), {
      env: { ...process.env, PYTHONUNBUFFERED: "1", ...o.env, PYTHONPATH: pythonPath },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stdoutBytes = 0;
    const stderrLines: string[] = [];
    let stderrPartial = "";
    let timedOut = false;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const kill = () => {
      child.kill("SIGTERM");
      killTimer ??= setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, o.timeoutMs);
    const onAbort = () => {
      aborted = true;
      kill();
    };
    o.signal?.addEventListener("abort", onAbort, { once: true });

    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      stdoutBytes += Buffer.byteLength(chunk);
      if (stdoutBytes <= MAX_STDOUT_BYTES) stdout += chunk;
    });
    child.stderr.setEncoding("utf8");
    const pushLine = (line: string) => {
      stderrLines.push(line);
      if (stderrLines.length > STDERR_TAIL_LINES) stderrLines.shift();
      o.onStderrLine?.(line);
    };
    child.stderr.on("data", (chunk: string) => {
      const parts = (stderrPartial + chunk).split("\n");
      stderrPartial = parts.pop() ?? "";
      for (const line of parts) pushLine(line);
    });

    let spawnError: Error | undefined;
    child.once("error", (err) => {
      spawnError = err; // e.g. ENOENT: no such interpreter; "close" follows
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      o.signal?.removeEventListener("abort", onAbort);
      if (stderrPartial) pushLine(stderrPartial);
      const tail = stderrLines.join("\n");
      if (spawnError)
        return reject(new UpdateError(`cannot run ${o.python}: ${spawnError.message}`, "failed", tail));
      if (timedOut)
        return reject(new UpdateError(`timed out after ${o.timeoutMs} ms`, "timeout", tail, code));
      if (aborted) return reject(new UpdateError("aborted (shutting down)", "failed", tail, code));
      if (code !== 0)
        return reject(
          new UpdateError(
            `exited with ${code === null ? `signal ${signal}` : `code ${code}`}`,
            "failed",
            tail,
            code,
          ),
        );
      try {
        resolvePromise(parseUpdateOutput(stdout));
      } catch (err) {
        reject(new UpdateError((err as Error).message, "failed", tail, code));
      }
    });
  });
}

/** The result object from the trainer's stdout (the whole output, or its last line that is one). */
export function parseUpdateOutput(stdout: string): UpdateResult {
  const text = stdout.trim();
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    const last = text
      .split("\n")
      .map((l) => l.trim())
      .reverse()
      .find((l) => l.startsWith("{"));
    if (last === undefined) throw new Error(`no JSON result on stdout: ${JSON.stringify(text.slice(-200))}`);
    try {
      obj = JSON.parse(last);
    } catch {
      throw new Error(`no JSON result on stdout: ${JSON.stringify(last.slice(-200))}`);
    }
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj))
    throw new Error("the result is not a JSON object");
  const raw = obj as Record<string, unknown>;
  const decision = raw.decision;
  if (!DECISIONS.includes(decision as Decision))
    throw new Error(`unknown decision ${JSON.stringify(decision)} (expected ${DECISIONS.join(", ")})`);
  const str = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined);
  const version = str(raw.version);
  if (decision === "published" && !version) throw new Error('decision "published" without a version');
  return {
    decision: decision as Decision,
    reason: str(raw.reason) ?? "",
    parentVersion: str(raw.parent_version),
    version,
    seconds: typeof raw.seconds === "number" ? raw.seconds : undefined,
    raw,
  };
}
