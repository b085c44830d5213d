/**
 * Randomised fault harness for the durable log (log.ts): what an append
 * acknowledged must be readable after any of
 *   - a write fault: a short write then ENOSPC, an EIO before any byte, a
 *     failed fdatasync, and sometimes a truncate that fails too (the log must
 *     then stop, refusing every later append);
 *   - kill -9 of a process in the middle of its appends (a real child process);
 *   - one flipped byte anywhere in a closed log (the damaged frame must be
 *     quarantined and reported, every other record kept).
 * Used by log-faults.spec.ts (a few hundred runs in `npm test`) and by
 * `npm run fault:log` (the long campaign: `--runs N`, default 1,000).
 */
import { fork } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { seededRandom } from "../random.js";
import { EmbeddedLog, type LogRecord } from "./log.js";

export type FaultKind = "write" | "kill" | "damage";

export interface RunResult {
  readonly kind: FaultKind;
  readonly seed: number;
  /** Records whose append resolved. */
  readonly acknowledged: number;
  /** Acknowledged records not readable afterwards (must be 0; damage: the quarantined record excepted). */
  readonly lost: string[];
  /** Damaged regions reported on reopen. */
  readonly damaged: number;
  /** Why the run failed its checks, if it did. */
  readonly problem?: string;
}

const record = (key: string, rand: () => number): LogRecord => ({
  key,
  value: new Uint8Array(Math.floor(rand() * 300)).map(() => Math.floor(rand() * 256)),
  timestampMs: 1_700_000_000_000 + Math.floor(rand() * 1e6),
});

async function readKeys(dir: string): Promise<{ keys: string[]; damaged: number; log: EmbeddedLog }> {
  const log = await EmbeddedLog.open(dir, { segmentBytes: 4096 });
  const keys: string[] = [];
  let offset = log.startOffset;
  for (;;) {
    const { records, next } = await log.read(offset, 64 * 1024);
    for (const r of records) keys.push(r.key);
    if (next === offset) break;
    offset = next;
  }
  return { keys, damaged: log.damage.length, log };
}

function fsError(code: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: injected fault`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

/** A file handle whose writes, fsyncs and truncates fail at random. */
function faultyHandle(
  fh: FileHandle,
  rand: () => number,
  odds: { write: number; truncate: number },
): FileHandle {
  return new Proxy(fh, {
    get(target, prop) {
      if (prop === "write") {
        return async (buffer: Buffer, offset = 0, length = buffer.length - offset) => {
          const r = rand();
          if (r < odds.write / 2) {
            // a short write: part of the bytes reach the file, then the disk is full
            const part = Math.floor(rand() * length);
            if (part > 0) await target.write(buffer, offset, part);
            throw fsError("ENOSPC");
          }
          if (r < odds.write) throw fsError("EIO");
          return target.write(buffer, offset, length);
        };
      }
      if (prop === "datasync") {
        return async () => {
          if (rand() < odds.write / 2) throw fsError("EIO");
          return target.datasync();
        };
      }
      if (prop === "truncate") {
        return async (len?: number) => {
          if (rand() < odds.truncate) throw fsError("EIO");
          return target.truncate(len);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function writeFaultRun(seed: number): Promise<RunResult> {
  const rand = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), "log-fault-"));
  const acked: string[] = [];
  let problem: string | undefined;
  try {
    const log = await EmbeddedLog.open(dir, {
      segmentBytes: 1024 + Math.floor(rand() * 4096),
      openForAppend: async (path) =>
        faultyHandle(await open(path, "a"), rand, { write: 0.15, truncate: rand() < 0.3 ? 0.5 : 0 }),
    });
    let stoppedAt = -1;
    for (let i = 0; i < 60; i++) {
      const batch = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, j) => record(`r${i}-${j}`, rand));
      try {
        await log.append(batch, rand() < 0.8);
        if (stoppedAt >= 0) problem = `append ${i} was accepted after the log stopped at ${stoppedAt}`;
        acked.push(...batch.map((r) => r.key));
      } catch {
        if (log.failure && stoppedAt < 0) stoppedAt = i;
      }
    }
    await log.close().catch(() => {});
    const { keys, damaged, log: reopened } = await readKeys(dir);
    await reopened.close();
    const seen = new Set(keys);
    const lost = acked.filter((k) => !seen.has(k));
    const attempted = new Set<string>();
    for (let i = 0; i < 60; i++) for (let j = 0; j < 5; j++) attempted.add(`r${i}-${j}`);
    const unknown = keys.filter((k) => !attempted.has(k));
    if (unknown.length > 0) problem ??= `read back records never written: ${unknown.slice(0, 3).join(", ")}`;
    if (damaged > 0) problem ??= `write faults left ${damaged} damaged regions`;
    const order = keys.filter((k) => acked.includes(k));
    if (order.join() !== acked.filter((k) => seen.has(k)).join())
      problem ??= "acknowledged records out of order";
    return { kind: "write", seed, acknowledged: acked.length, lost, damaged, problem };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function killRun(seed: number): Promise<RunResult> {
  const rand = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), "log-kill-"));
  try {
    const child = fork(fileURLToPath(import.meta.url), ["--child", dir, String(seed)], {
      stdio: ["ignore", "pipe", "inherit", "ipc"],
    });
    const acked: string[] = [];
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) if (line.startsWith("ack ")) acked.push(...line.slice(4).split(","));
    });
    await new Promise<void>((resolve) => child.once("message", () => resolve())); // appending
    await new Promise((r) => setTimeout(r, 5 + Math.floor(rand() * 60)));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const { keys, damaged, log } = await readKeys(dir);
    await log.close();
    const seen = new Set(keys);
    const lost = acked.filter((k) => !seen.has(k));
    return {
      kind: "kill",
      seed,
      acknowledged: acked.length,
      lost,
      damaged,
      problem: damaged > 0 ? `a crash mid-write was taken for damage (${damaged} regions)` : undefined,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The child of a kill run: appends until killed, printing each acknowledged batch. */
async function childAppender(dir: string, seed: number): Promise<void> {
  const rand = seededRandom(seed ^ 0x5bd1e995);
  const log = await EmbeddedLog.open(dir, { segmentBytes: 1024 + Math.floor(rand() * 4096) });
  process.send?.("ready");
  for (let i = 0; ; i++) {
    const batch = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, j) => record(`k${i}-${j}`, rand));
    await log.append(batch, true);
    process.stdout.write(`ack ${batch.map((r) => r.key).join(",")}\n`);
  }
}

async function damageRun(seed: number): Promise<RunResult> {
  const rand = seededRandom(seed);
  const dir = mkdtempSync(join(tmpdir(), "log-damage-"));
  try {
    const log = await EmbeddedLog.open(dir, { segmentBytes: 1024 + Math.floor(rand() * 4096) });
    const acked: string[] = [];
    const n = 5 + Math.floor(rand() * 40);
    for (let i = 0; i < n; i++) {
      const r = record(`d${i}`, rand);
      await log.append([r], true);
      acked.push(r.key);
    }
    await log.close();
    const segments = readdirSync(dir).filter((f) => f.endsWith(".log"));
    const victim = join(dir, segments[Math.floor(rand() * segments.length)]!);
    const bytes = readFileSync(victim);
    const at = Math.floor(rand() * bytes.length);
    bytes[at] = bytes[at]! ^ (1 << Math.floor(rand() * 8));
    writeFileSync(victim, bytes);
    const { keys, damaged, log: reopened } = await readKeys(dir);
    await reopened.close();
    const quarantined = readdirSync(dir).filter((f) => f.includes(".corrupt-")).length;
    const seen = new Set(keys);
    const missing = acked.filter((k) => !seen.has(k));
    // The frame holding the flipped byte is quarantined; every other record must remain.
    let problem: string | undefined;
    if (damaged !== 1 || quarantined !== 1)
      problem = `one flipped byte: ${damaged} damage reports, ${quarantined} quarantine files (expected 1 and 1)`;
    else if (missing.length !== 1)
      problem = `${missing.length} records missing, expected exactly the damaged one`;
    return { kind: "damage", seed, acknowledged: acked.length, lost: missing.slice(1), damaged, problem };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `runs` randomised runs (a mix of the three kinds) from `seed`. */
export async function runFaultCampaign(
  runs: number,
  seed = 1,
  onRun?: (r: RunResult) => void,
): Promise<RunResult[]> {
  const rand = seededRandom(seed);
  const results: RunResult[] = [];
  for (let i = 0; i < runs; i++) {
    const r = rand();
    const runSeed = Math.floor(rand() * 2 ** 31);
    const kind: FaultKind = r < 0.5 ? "write" : r < 0.85 ? "damage" : "kill";
    const run = { write: writeFaultRun, damage: damageRun, kill: killRun }[kind];
    // A run that throws (reading back failed, say) is a failed check, not the end of the campaign.
    const result = await run(runSeed).catch(
      (err: unknown): RunResult => ({
        kind,
        seed: runSeed,
        acknowledged: 0,
        lost: [],
        damaged: 0,
        problem: `threw: ${err instanceof Error ? err.message : String(err)}`,
      }),
    );
    results.push(result);
    onRun?.(result);
  }
  return results;
}

if (process.argv[2] === "--child") {
  await childAppender(process.argv[3]!, Number(process.argv[4]));
}
