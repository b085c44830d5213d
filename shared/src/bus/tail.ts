/**
 * A read-only view of an EmbeddedLog that another process writes: the way a
 * process reads a topic of the embedded bus without owning its directory.
 *
 * The embedded bus is one process's files (a LOCK file says which). Opening
 * the same directory from a second process would append to, and truncate the
 * torn tail of, files the owner is writing. A tail never writes, locks or
 * truncates: it lists the segment files, reads whole frames from a byte
 * offset and stops at the first frame that is incomplete or fails its crc32
 * (the owner may be half-way through writing it; the next read sees it
 * whole). Positions live in the reader's memory only.
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../log.js";
import {
  decodeFrame,
  HEADER_BYTES,
  isPadding,
  MAX_FRAME_BYTES,
  SEGMENT_SUFFIX,
  type StoredRecord,
} from "./log.js";
import { pause } from "./port.js";

export interface TailRead {
  readonly records: StoredRecord[];
  /** Offset to read from next. */
  readonly next: number;
  /** True when `next` is the end of what the log holds now. */
  readonly atEnd: boolean;
  /** Bytes skipped because the owner's retention deleted them before they were read. */
  readonly skippedBytes: number;
}

interface SegmentFile {
  readonly base: number;
  readonly path: string;
  readonly size: number;
}

export class EmbeddedLogTail {
  constructor(readonly dir: string) {}

  private async segments(): Promise<SegmentFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return []; // the owner has not created it yet
      throw err;
    }
    const bases = names
      .filter((f) => f.endsWith(SEGMENT_SUFFIX))
      .map((f) => Number(f.slice(0, -SEGMENT_SUFFIX.length)))
      .filter((n) => Number.isSafeInteger(n))
      .sort((a, b) => a - b);
    const out: SegmentFile[] = [];
    for (const base of bases) {
      const path = join(this.dir, `${String(base).padStart(20, "0")}${SEGMENT_SUFFIX}`);
      try {
        out.push({ base, path, size: (await stat(path)).size });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // deleted by retention meanwhile
      }
    }
    return out;
  }

  /** Whole records from `offset`, about `maxBytes` of them (at least one when one is complete). */
  async read(offset: number, maxBytes = 1024 * 1024): Promise<TailRead> {
    const segments = await this.segments();
    const first = segments[0];
    if (!first) return { records: [], next: offset, atEnd: true, skippedBytes: 0 };
    let from = offset;
    let skippedBytes = 0;
    if (from < first.base) {
      skippedBytes = first.base - from;
      from = first.base;
    }
    const records: StoredRecord[] = [];
    let budget = maxBytes;
    for (let i = 0; i < segments.length && budget > 0; i++) {
      const seg = segments[i]!;
      const end = seg.base + seg.size;
      const nextSeg = segments[i + 1];
      if (from >= end) {
        // Past this segment: a later one starts at its end (offsets are byte positions).
        if (nextSeg && from < nextSeg.base) from = nextSeg.base;
        continue;
      }
      if (from < seg.base) break; // a gap we cannot explain: wait for the owner
      const fh = await open(seg.path, "r").catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined;
        throw err;
      });
      if (!fh) break;
      try {
        let pos = from - seg.base;
        while (pos + HEADER_BYTES <= seg.size && budget > 0) {
          const header = Buffer.alloc(HEADER_BYTES);
          await fh.read(header, 0, HEADER_BYTES, pos);
          const frameLength = header.readUInt32LE(0);
          if (frameLength > MAX_FRAME_BYTES) break;
          const total = HEADER_BYTES + frameLength;
          if (pos + total > seg.size) break; // still being written
          const want = Math.min(seg.size - pos, Math.max(total, budget));
          const buf = Buffer.alloc(want);
          const { bytesRead } = await fh.read(buf, 0, want, pos);
          let p = 0;
          while (p + HEADER_BYTES <= bytesRead) {
            const len = buf.readUInt32LE(p);
            if (p + HEADER_BYTES + len > bytesRead) break;
            const record = decodeFrame(buf, p, seg.base + pos + p);
            if (!record) break;
            if (!isPadding(record)) records.push(record); // padding: quarantined damage (log.ts)
            p += HEADER_BYTES + len;
          }
          if (p === 0) break; // torn or not yet complete: read again later
          pos += p;
          budget -= p;
        }
        from = seg.base + pos;
      } finally {
        await fh.close();
      }
      if (from < end) break; // stopped inside this segment
    }
    const last = segments[segments.length - 1]!;
    return { records, next: from, atEnd: from >= last.base + last.size, skippedBytes };
  }
}

export interface FollowTailOptions {
  readonly dir: string;
  /** Byte offset to start from. */
  readonly from: number;
  readonly pollMs: number;
  readonly logger: Logger;
  /** Names the log in log lines, e.g. "items". */
  readonly label: string;
  /** Handles records in log order; a throw re-reads the batch after a backoff. */
  handle(records: readonly StoredRecord[]): Promise<void>;
}

export interface FollowedTail {
  /** True once the reader reached the end of the log (stays true). */
  caughtUp(): boolean;
  /** Resolves true once caught up, false after `timeoutMs`. */
  waitCaughtUp(timeoutMs: number): Promise<boolean>;
  /** Wall-clock start of the newest read that reached the end (0: never): the reader has seen everything written before it. */
  freshAt(): number;
  stop(): Promise<void>;
}

/**
 * Follows another process's embedded log read-only (the owner keeps writing
 * it): reads from `from` on, hands each batch to `handle`, retries a failed
 * batch with backoff, and polls at the end or at a frame still being written.
 */
export function followTail(o: FollowTailOptions): FollowedTail {
  const tail = new EmbeddedLogTail(o.dir);
  const abort = new AbortController();
  let position = o.from;
  let caughtUp = false;
  let freshAt = 0;
  let failures = 0;
  let waiters: Array<() => void> = [];
  const loop = (async () => {
    while (!abort.signal.aborted) {
      const startedAt = Date.now();
      let atEnd = true;
      let progressed = 0;
      try {
        const read = await tail.read(position, 1024 * 1024);
        if (read.skippedBytes > 0)
          o.logger.warn(
            { dir: o.dir, skippedBytes: read.skippedBytes },
            `${o.label} log: records deleted by retention before they were read`,
          );
        if (read.records.length > 0) await o.handle(read.records);
        progressed = read.next - position;
        position = read.next;
        atEnd = read.atEnd;
        failures = 0;
      } catch (err) {
        failures++;
        o.logger.error({ err, dir: o.dir, position }, `${o.label} log: batch failed, retrying`);
        await pause(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)), abort.signal);
        continue;
      }
      if (atEnd) {
        freshAt = startedAt;
        if (!caughtUp) {
          caughtUp = true;
          for (const w of waiters.splice(0)) w();
        }
      }
      // At the end, or stopped at a frame the owner is still writing: wait for more.
      if (atEnd || progressed === 0) await pause(o.pollMs, abort.signal);
    }
  })();
  return {
    caughtUp: () => caughtUp,
    async waitCaughtUp(ms) {
      if (caughtUp) return true;
      let done: () => void = () => {};
      const reached = new Promise<void>((r) => {
        done = r;
        waiters.push(r);
      });
      await Promise.race([reached, pause(ms)]);
      waiters = waiters.filter((w) => w !== done);
      return caughtUp;
    },
    freshAt: () => freshAt,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
