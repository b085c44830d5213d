/**
 * A durable append-only log on local disk: the storage of the embedded event
 * bus and of the spill files that hold events while Kafka is unavailable.
 *
 * Layout: one directory per log, holding segment files named by the offset of
 * their first byte (`00000000000000000000.log`, ...). Offsets are byte
 * positions in the whole log, so a reader seeks without an index. Each record
 * is one frame:
 *
 *   u32 frameLength | u32 crc32(payload) | payload
 *   payload = f64 timestampMs | u16 keyLength | key (utf-8) | value
 *
 * Appends are group-committed: concurrent appends become one write, and one
 * fdatasync when any of them asked for `sync`. Unsynced appends are fsync'd
 * within `fsyncIntervalMs`. A new segment's directory entry is fsync'd too.
 *
 * Failures never lose what was acknowledged:
 * - A write or fsync that fails (a short write, ENOSPC, EIO) rejects its
 *   batch and truncates the segment back to its last good size, so the next
 *   append lands where readers expect it. If even that fails, the log stops:
 *   every later append is refused with the cause (`failure`).
 * - On open every segment is verified. Only a torn tail of the last segment
 *   (a crash in the middle of a write: an incomplete last frame, or zeros) is
 *   cut off. Any other damage (a frame whose checksum fails, with whole frames
 *   after it, or a complete last frame that fails) is quarantined: its bytes
 *   are copied to `<segment>.corrupt-<offset>`, replaced in place by a padding
 *   frame of the same length (offsets stay valid; readers skip padding), and
 *   reported (`damage`, `onDamage`), so the owner can count it and stop
 *   serving. Nothing after the damage is dropped.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { type FileHandle, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";

export interface LogRecord {
  readonly key: string;
  readonly value: Uint8Array;
  /** Unix epoch milliseconds (producer time). */
  readonly timestampMs: number;
}

export interface StoredRecord extends LogRecord {
  /** Offset of this record's frame. */
  readonly offset: number;
  /** Offset of the next record. */
  readonly nextOffset: number;
}

export interface LogOptions {
  /** Called for each damaged region found on open, once it is quarantined. */
  readonly onDamage?: (damage: LogDamage) => void;
  /** Opens the active segment for appending (tests inject write faults here). */
  readonly openForAppend?: (path: string) => Promise<FileHandle>;
  /** A new segment starts once the active one reaches this size. */
  readonly segmentBytes?: number;
  /** Oldest whole segments are deleted while the log is bigger (Infinity keeps all). */
  readonly retentionBytes?: number;
  /** Upper bound on how long an unsynced append stays unsynced. */
  readonly fsyncIntervalMs?: number;
}

/** A damaged region found on open and quarantined. */
export interface LogDamage {
  readonly log: string;
  readonly segment: string;
  /** Log offset of the first damaged byte. */
  readonly offset: number;
  readonly bytes: number;
  /** The file the damaged bytes were copied to. */
  readonly quarantinedTo: string;
}

/**
 * Padding frames replace quarantined bytes, and readers skip them: an empty
 * key and a NaN timestamp, which no producer writes (their timestamps are
 * clock readings), so any region of at least one frame's minimum size can be
 * padded over.
 */
export function isPadding(record: Pick<LogRecord, "key" | "timestampMs">): boolean {
  return record.key === "" && Number.isNaN(record.timestampMs);
}

/** Bytes before each frame's payload (length and crc32); exported for read-only tails (tail.ts). */
export const HEADER_BYTES = 8;
const FIXED_PAYLOAD_BYTES = 10;
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
export const SEGMENT_SUFFIX = ".log";

interface Segment {
  readonly base: number;
  size: number;
  readonly path: string;
  /** Shared by concurrent readers: one handle per segment. */
  reader?: Promise<FileHandle>;
}

interface PendingAppend {
  readonly bytes: Buffer;
  readonly sync: boolean;
  resolve(end: number): void;
  reject(err: unknown): void;
}

export class EmbeddedLog {
  private readonly segments: Segment[] = [];
  private writer!: FileHandle;
  private pending: PendingAppend[] = [];
  private flushing: Promise<void> | undefined;
  private dirty = false;
  private closed = false;
  private readonly fsyncTimer: NodeJS.Timeout;
  private readonly waiters = new Set<() => void>();
  private readonly segmentBytes: number;
  private readonly retentionBytes: number;
  private failed: Error | undefined;
  /** Damaged regions quarantined when the log was opened. */
  readonly damage: LogDamage[] = [];

  private constructor(
    readonly dir: string,
    private readonly options: LogOptions,
  ) {
    this.segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    this.retentionBytes = options.retentionBytes ?? Number.POSITIVE_INFINITY;
    this.fsyncTimer = setInterval(() => void this.syncIfDirty(), options.fsyncIntervalMs ?? 1_000);
    this.fsyncTimer.unref();
  }

  static async open(dir: string, options: LogOptions = {}): Promise<EmbeddedLog> {
    mkdirSync(dir, { recursive: true });
    const log = new EmbeddedLog(dir, options);
    const bases = readdirSync(dir)
      .filter((f) => f.endsWith(SEGMENT_SUFFIX))
      .map((f) => Number(f.slice(0, -SEGMENT_SUFFIX.length)))
      .filter((n) => Number.isSafeInteger(n))
      .sort((a, b) => a - b);
    for (const base of bases) {
      const path = segmentPath(dir, base);
      log.segments.push({ base, path, size: (await stat(path)).size });
    }
    const created = log.segments.length === 0;
    if (created) log.segments.push({ base: 0, path: segmentPath(dir, 0), size: 0 });
    for (const segment of log.segments) await log.verify(segment, segment === log.active);
    log.writer = await log.openForAppend(log.active.path);
    if (created) await syncDir(dir);
    return log;
  }

  /** Why the log refuses appends (a failed write it could not undo), if it does. */
  get failure(): Error | undefined {
    return this.failed;
  }

  private openForAppend(path: string): Promise<FileHandle> {
    return this.options.openForAppend ? this.options.openForAppend(path) : open(path, "a");
  }

  /** Offset of the oldest retained record. */
  get startOffset(): number {
    return this.segments[0]!.base;
  }

  /** Offset just past the last written record (readers see records up to here). */
  get endOffset(): number {
    const a = this.active;
    return a.base + a.size;
  }

  /** Bytes retained on disk. */
  get sizeBytes(): number {
    return this.endOffset - this.startOffset;
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  /**
   * Appends records in order. Resolves with the end offset once they are
   * written, and, when `sync`, once they are on stable storage.
   */
  append(records: readonly LogRecord[], sync = true): Promise<number> {
    if (this.closed) return Promise.reject(new Error(`log ${this.dir} is closed`));
    if (this.failed) return Promise.reject(this.failed);
    if (records.length === 0) return Promise.resolve(this.endOffset);
    if (records.some(isPadding))
      return Promise.reject(
        new Error("a record with an empty key and a NaN timestamp would read as padding"),
      );
    const bytes = Buffer.concat(records.map(encodeFrame));
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ bytes, sync, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        if (this.failed) {
          for (const p of batch) p.reject(this.failed);
          continue;
        }
        let goodSize: number | undefined;
        try {
          if (this.active.size >= this.segmentBytes) await this.roll();
          goodSize = this.active.size;
          const bytes = batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((p) => p.bytes));
          await writeAll(this.writer, bytes);
          if (batch.some((p) => p.sync)) {
            await this.writer.datasync();
            this.dirty = false;
          } else {
            this.dirty = true;
          }
          this.active.size += bytes.length;
          const end = this.endOffset;
          for (const p of batch) p.resolve(end);
          this.notify();
        } catch (err) {
          if (goodSize !== undefined) await this.undoWrite(goodSize, err);
          else this.failed ??= stopped(this.dir, "a new segment could not be started", err);
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /**
   * A write or fsync failed after `goodSize` bytes of the active segment: cut
   * whatever part of the batch reached the file, so the log ends on a whole
   * frame again and the next append lands at `endOffset`. If that fails too,
   * stop the log rather than append after bytes readers cannot parse.
   */
  private async undoWrite(goodSize: number, cause: unknown): Promise<void> {
    try {
      await this.writer.truncate(goodSize);
      await this.writer.datasync();
      this.active.size = goodSize;
    } catch (err) {
      this.failed ??= stopped(this.dir, `a failed write (${describe(cause)}) could not be undone`, err);
    }
  }

  private async roll(): Promise<void> {
    await this.writer.datasync();
    await this.writer.close();
    const base = this.endOffset;
    this.segments.push({ base, path: segmentPath(this.dir, base), size: 0 });
    this.writer = await this.openForAppend(this.active.path);
    await syncDir(this.dir); // the new segment's directory entry survives a crash
    await this.enforceRetention();
  }

  private async enforceRetention(): Promise<void> {
    while (this.segments.length > 1 && this.sizeBytes > this.retentionBytes) await this.dropOldest();
  }

  /** Deletes whole segments that end at or before `offset` (never the active one). */
  async truncateBefore(offset: number): Promise<void> {
    while (this.segments.length > 1 && this.segments[1]!.base <= offset) await this.dropOldest();
  }

  private async dropOldest(): Promise<void> {
    const oldest = this.segments.shift()!;
    await (await oldest.reader?.catch(() => undefined))?.close();
    await rm(oldest.path, { force: true });
  }

  private async syncIfDirty(): Promise<void> {
    if (!this.dirty || this.closed || this.flushing || this.failed) return;
    this.dirty = false;
    try {
      await this.writer.datasync();
    } catch (err) {
      // After a failed fsync the kernel may have dropped the dirty pages, and a
      // retry can succeed without them: stop instead of trusting it.
      this.failed ??= stopped(this.dir, "a background fsync failed", err);
    }
  }

  /**
   * Reads whole records from `offset` (clamped to the retained range), about
   * `maxBytes` of them, at least one when any exists.
   */
  async read(offset: number, maxBytes = 1024 * 1024): Promise<{ records: StoredRecord[]; next: number }> {
    if (this.closed) return { records: [], next: offset };
    let from = Math.max(offset, this.startOffset);
    const end = this.endOffset;
    const records: StoredRecord[] = [];
    let budget = maxBytes;
    while (from < end && budget > 0) {
      const segment = this.segmentFor(from);
      if (!segment) break;
      const segmentEnd = segment.base + segment.size;
      if (from >= segmentEnd) {
        from = segmentEnd; // at a segment boundary: the next segment starts here
        if (segment === this.active) break;
        continue;
      }
      segment.reader ??= open(segment.path, "r");
      const reader = await segment.reader;
      const want = Math.min(Math.max(budget, HEADER_BYTES), segmentEnd - from);
      let buf = await readAt(reader, from - segment.base, want);
      let pos = 0;
      while (pos + HEADER_BYTES <= buf.length) {
        const frameLength = buf.readUInt32LE(pos);
        if (pos + HEADER_BYTES + frameLength > buf.length) {
          if (records.length > 0 || pos > 0) break;
          // A single record bigger than the budget: read it whole.
          buf = await readAt(reader, from - segment.base, HEADER_BYTES + frameLength);
          if (buf.length < HEADER_BYTES + frameLength) throw new Error(`log ${this.dir}: short read`);
        }
        const record = decodeFrame(buf, pos, from + pos);
        if (!record) throw new Error(`log ${this.dir}: corrupt record at offset ${from + pos}`);
        if (!isPadding(record)) records.push(record);
        pos += HEADER_BYTES + frameLength;
      }
      if (pos === 0) break;
      from += pos;
      budget -= pos;
    }
    return { records, next: from };
  }

  private segmentFor(offset: number): Segment | undefined {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i]!;
      if (s.base <= offset) return s;
    }
    return undefined;
  }

  /** Resolves when records exist past `offset`, or after `timeoutMs`. */
  waitForData(offset: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.endOffset > offset || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing) await this.flushing;
    this.closed = true;
    clearInterval(this.fsyncTimer);
    this.notify();
    await this.writer.datasync().catch(() => {});
    await this.writer.close();
    for (const s of this.segments) await (await s.reader?.catch(() => undefined))?.close();
  }

  /**
   * Checks every frame of a segment. A torn tail of the last segment is cut
   * off (a crash mid-write: nothing there was acknowledged); any other damage
   * is quarantined and padded over (see the file comment).
   */
  private async verify(segment: Segment, last: boolean): Promise<void> {
    if (segment.size === 0) return;
    const buf = await readFile(segment.path);
    let pos = 0;
    while (pos < buf.length) {
      const length = frameLength(buf, pos);
      if (length > 0) {
        pos += length;
        continue;
      }
      const resume = resync(buf, pos + 1, last);
      if (resume < 0 && last && tornTail(buf, pos)) {
        await truncate(segment.path, pos);
        segment.size = pos;
        return;
      }
      const end = resume < 0 ? buf.length : resume;
      await this.quarantine(segment, buf, pos, end);
      pos = end;
    }
  }

  /** Copies bytes [start, end) of a segment aside and pads over them in place. */
  private async quarantine(segment: Segment, buf: Buffer, start: number, end: number): Promise<void> {
    const offset = segment.base + start;
    const quarantinedTo = `${segment.path}.corrupt-${offset}`;
    if (end - start < HEADER_BYTES + FIXED_PAYLOAD_BYTES) {
      throw new Error(
        `log ${this.dir}: ${end - start} damaged bytes at offset ${offset} of ${segment.path} are too few to pad over; ` +
          "move the segment aside by hand",
      );
    }
    await writeFile(quarantinedTo, buf.subarray(start, end), { flush: true });
    const padding = encodeFrame({
      key: "",
      value: new Uint8Array(end - start - HEADER_BYTES - FIXED_PAYLOAD_BYTES),
      timestampMs: Number.NaN,
    });
    const fh = await open(segment.path, "r+");
    try {
      await fh.write(padding, 0, padding.length, start);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    padding.copy(buf, start);
    const damage: LogDamage = {
      log: this.dir,
      segment: segment.path,
      offset,
      bytes: end - start,
      quarantinedTo,
    };
    this.damage.push(damage);
    this.options.onDamage?.(damage);
  }
}

/** Length of the valid frame at `pos` (header included), or 0. */
function frameLength(buf: Buffer, pos: number): number {
  if (pos + HEADER_BYTES > buf.length) return 0;
  const length = buf.readUInt32LE(pos);
  if (length > MAX_FRAME_BYTES || !decodeFrame(buf, pos, pos)) return 0;
  return HEADER_BYTES + length;
}

/**
 * The first position at or after `from` where whole, valid frames run to the
 * end of the segment (or, in the last segment, to a torn tail); -1 if none.
 * A checksum makes a false match at a random position a 2^-32 event.
 */
function resync(buf: Buffer, from: number, last: boolean): number {
  for (let p = from; p + HEADER_BYTES + FIXED_PAYLOAD_BYTES <= buf.length; p++) {
    if (frameLength(buf, p) === 0) continue;
    let q = p;
    for (let n = frameLength(buf, q); n > 0; n = frameLength(buf, q)) q += n;
    if (q === buf.length || (last && tornTail(buf, q))) return p;
  }
  return -1;
}

/**
 * Whether the bytes from `pos` to the end are what an interrupted append
 * leaves: fewer than a header, zeros, or a frame whose declared length runs
 * past the end and whose bytes are not a whole frame with a damaged length.
 */
function tornTail(buf: Buffer, pos: number): boolean {
  const rest = buf.length - pos;
  if (rest < HEADER_BYTES) return true;
  if (buf.subarray(pos).every((b) => b === 0)) return true;
  const declared = buf.readUInt32LE(pos);
  if (HEADER_BYTES + declared <= rest) return false; // complete but invalid: damage
  // A flipped bit in the length field also "runs past the end": the payload's checksum tells.
  return crc32(buf.subarray(pos + HEADER_BYTES)) !== buf.readUInt32LE(pos + 4);
}

/** fsync a directory, so that a file created in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function stopped(dir: string, what: string, cause: unknown): Error {
  return new Error(`log ${dir} stopped: ${what}: ${describe(cause)}`, { cause });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function segmentPath(dir: string, base: number): string {
  return join(dir, `${String(base).padStart(20, "0")}${SEGMENT_SUFFIX}`);
}

function encodeFrame(record: LogRecord): Buffer {
  const key = Buffer.from(record.key, "utf8");
  if (key.length > 0xffff) throw new Error("record key longer than 65535 bytes");
  const payloadLength = FIXED_PAYLOAD_BYTES + key.length + record.value.byteLength;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payloadLength);
  frame.writeUInt32LE(payloadLength, 0);
  frame.writeDoubleLE(record.timestampMs, 8);
  frame.writeUInt16LE(key.length, 16);
  key.copy(frame, 18);
  frame.set(record.value, 18 + key.length);
  frame.writeUInt32LE(crc32(frame.subarray(HEADER_BYTES)), 4);
  return frame;
}

/** The frame at `pos` of `buf`, whose log offset is `offset`; undefined when torn or corrupt. */
export function decodeFrame(buf: Buffer, pos: number, offset: number): StoredRecord | undefined {
  const payloadLength = buf.readUInt32LE(pos);
  if (payloadLength < FIXED_PAYLOAD_BYTES || pos + HEADER_BYTES + payloadLength > buf.length)
    return undefined;
  const payload = buf.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + payloadLength);
  if (crc32(payload) !== buf.readUInt32LE(pos + 4)) return undefined;
  const keyLength = payload.readUInt16LE(8);
  if (FIXED_PAYLOAD_BYTES + keyLength > payloadLength) return undefined;
  return {
    timestampMs: payload.readDoubleLE(0),
    key: payload.toString("utf8", FIXED_PAYLOAD_BYTES, FIXED_PAYLOAD_BYTES + keyLength),
    // A copy: the read buffer is reused by nobody, but callers may keep values long.
    value: new Uint8Array(payload.subarray(FIXED_PAYLOAD_BYTES + keyLength)),
    offset,
    nextOffset: offset + HEADER_BYTES + payloadLength,
  };
}

async function writeAll(fh: FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, written, bytes.length - written);
    written += bytesWritten;
  }
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
