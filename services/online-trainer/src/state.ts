/**
 * The state file (<RECSYS_ONLINE_DIR>/state.json): how far the samples topic
 * has been trained on, so no sample is trained on twice across restarts.
 *
 * Positions are kept per source (the embedded log directory, or the Kafka
 * topic) and partition as the position just past the last sample an update
 * consumed (embedded: a byte offset; Kafka: offset + 1); a sample at or below
 * it is skipped when read again. The file is replaced atomically (temporary
 * file, fsync, rename) after each update that consumed its samples, before
 * the Kafka offsets are committed: a crash in between re-delivers samples
 * that this file then skips.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";

export interface UpdateSummary {
  readonly atMs: number;
  readonly shard: string;
  readonly samples: number;
  readonly consumed: boolean;
  readonly results: Readonly<Record<string, { decision: string; version?: string; reason?: string }>>;
}

export interface OnlineState {
  readonly version: 1;
  /** source -> partition -> position just past the last consumed sample (decimal string). */
  readonly positions: Record<string, Record<string, string>>;
  /** source -> newest sample time consumed (guards a log that was re-created from scratch). */
  readonly maxTimestampMs: Record<string, number>;
  /** Updates that consumed their samples, all time. */
  readonly updates: number;
  /** The most recent update attempts, newest last. */
  readonly recent: UpdateSummary[];
}

export function emptyState(): OnlineState {
  return { version: 1, positions: {}, maxTimestampMs: {}, updates: 0, recent: [] };
}

/** Reads the state; a missing file is an empty state, an unreadable one an error (never silently retrain). */
export function readState(path: string): OnlineState {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw err;
  }
  const s = JSON.parse(text) as Partial<OnlineState>;
  if (s.version !== 1 || typeof s.positions !== "object" || s.positions === null)
    throw new Error(`${path}: not an online-trainer state file (version ${String(s.version)})`);
  return {
    version: 1,
    positions: s.positions,
    maxTimestampMs: s.maxTimestampMs ?? {},
    updates: s.updates ?? 0,
    recent: s.recent ?? [],
  };
}

export function writeState(path: string, state: OnlineState): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, `${JSON.stringify(state, null, 1)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Position just past the last consumed sample of a source's partition (0n:
 * none): a record whose own "next" position is at or below it was consumed.
 */
export function consumedUpTo(state: OnlineState, source: string, partition: number): bigint {
  const p = state.positions[source]?.[String(partition)];
  return p === undefined ? 0n : BigInt(p);
}
