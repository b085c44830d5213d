/**
 * Shards: the JSONL files the Python trainer's online update reads
 * (services/trainer/recsys_trainer/rank_online.py), one labelled sample per
 * line with the user's history as of that moment:
 *
 *   {"user_id":"u","item_id":"i","timestamp_ms":123,"labels":{"click":1,"like":0},
 *    "history":[["item",ts_ms,type,value],...]}   oldest first, strictly before timestamp_ms
 *
 * (type: the EventType number; value: a rating's stars, seconds watched, or 0.)
 *
 * Histories are built when the shard is written (not when the sample is
 * read), after the feedback consumer caught up (trainer.ts), so feedback that
 * is read after its sample still lands in the sample's history.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { HistoryEntry, UserHistories } from "./history.js";

export interface ShardSample {
  readonly userId: string;
  readonly itemId: string;
  /** Impression time, Unix epoch milliseconds. */
  readonly timestampMs: number;
  readonly labels: Readonly<Record<string, number>>;
}

export interface ShardLine {
  readonly user_id: string;
  readonly item_id: string;
  readonly timestamp_ms: number;
  readonly labels: Record<string, number>;
  readonly history: HistoryEntry[];
}

/** A sample and its history as one shard line (labels click and like always present). */
export function shardLine(sample: ShardSample, histories: UserHistories, historyLength: number): ShardLine {
  return {
    user_id: sample.userId,
    item_id: sample.itemId,
    timestamp_ms: sample.timestampMs,
    labels: { click: 0, like: 0, ...sample.labels },
    history: histories.historyBefore(sample.userId, sample.timestampMs, historyLength),
  };
}

export function buildShard(
  samples: readonly ShardSample[],
  histories: UserHistories,
  historyLength: number,
): ShardLine[] {
  return samples.map((s) => shardLine(s, histories, historyLength));
}

const SHARD_PREFIX = "shard-";
const SHARD_SUFFIX = ".jsonl";

/** Shard file name of an update started at `atMs`: sorts by time. */
export function shardName(atMs: number, seq: number): string {
  return `${SHARD_PREFIX}${String(atMs).padStart(15, "0")}-${String(seq).padStart(6, "0")}${SHARD_SUFFIX}`;
}

/** Writes the shard atomically (temporary file, fsync, rename); returns its path. */
export function writeShard(dir: string, name: string, lines: readonly ShardLine[]): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    let chunk = "";
    for (const line of lines) {
      chunk += `${JSON.stringify(line)}\n`;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = "";
      }
    }
    if (chunk) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return path;
}

/** Deletes all but the newest `keep` shard files (and leftover temporary files); returns the deleted names. */
export function pruneShards(dir: string, keep: number): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const shards = names.filter((n) => n.startsWith(SHARD_PREFIX) && n.endsWith(SHARD_SUFFIX)).sort();
  const doomed = [
    ...shards.slice(0, Math.max(0, shards.length - keep)),
    ...names.filter((n) => n.startsWith(SHARD_PREFIX) && n.endsWith(`${SHARD_SUFFIX}.tmp`)),
  ];
  for (const n of doomed) rmSync(join(dir, n), { force: true });
  return doomed;
}
