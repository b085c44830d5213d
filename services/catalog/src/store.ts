/**
 * The catalog's durable item store: an append-only file, `<dir>/items.jsonl`,
 * one stored item per line (`<crc32 of the JSON, 8 hex>\t<JSON>`), the latest
 * line of an item id winning. A batch is one write and one fdatasync, after
 * everything in it was computed, so a batch is either stored whole or (after
 * a crash mid-write) cut at a line boundary that `open` repairs: a torn last
 * line (no newline yet) is dropped. Any other bad line (its checksum or JSON
 * fails) is damage, never a reason to drop the lines after it: it is moved
 * to `items.jsonl.corrupt`, reported (`damage`, `onDamage`) so the service
 * can stop serving, and the file is rewritten without it. Lines written
 * before checksums existed (plain JSON) are still read.
 *
 * `open` reads the file into memory and rewrites it without replaced lines
 * (write to a temporary file, fsync, rename) when more than half of its lines
 * are stale. The file holds every modality an item has, as given, plus the
 * text and fused vectors, so a restart never re-embeds anything.
 */
import { existsSync, mkdirSync } from "node:fs";
import { appendFile, type FileHandle, open, readFile, rename, truncate } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";

/** A damaged line found on open, moved out of the store. */
export interface StoreDamage {
  /** Line number (1-based) in the file as it was found. */
  readonly line: number;
  readonly bytes: number;
  readonly quarantinedTo: string;
  readonly reason: string;
}

export interface StoredModality {
  readonly modality: string;
  readonly dim: number;
  readonly values: number[];
}

export interface StoredItem {
  readonly itemId: string;
  readonly title: string;
  readonly description: string;
  readonly genres: string[];
  /** 0 when unknown. */
  readonly year: number;
  /** Wall-clock creation time, ms; 0 for a dataset item that kept its dataset age. */
  readonly createdAtMs: number;
  readonly modalities: StoredModality[];
  /** The text vector (empty when the item has no text). */
  readonly textVector: number[];
  /** The fused content vector published downstream (may be empty). */
  readonly contentVector: number[];
  /** Encoder and fusion that produced the vectors. */
  readonly encoder: string;
  readonly updatedAtMs: number;
}

export class CatalogStore {
  private readonly items = new Map<string, StoredItem>();
  /** Damaged lines moved out when the store was opened. */
  readonly damage: StoreDamage[] = [];
  private failed: Error | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    /** Bytes of whole lines in the file. */
    private bytes: number,
  ) {}

  static async open(
    dir: string,
    options: { onDamage?: (damage: StoreDamage) => void } = {},
  ): Promise<CatalogStore> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "items.jsonl");
    const loaded = new Map<string, StoredItem>();
    const damage: StoreDamage[] = [];
    let lines = 0;
    let bytes = 0; // length of the whole lines
    if (existsSync(path)) {
      const raw = await readFile(path);
      let start = 0;
      for (let n = 1; start < raw.length; n++) {
        const nl = raw.indexOf(0x0a, start);
        if (nl < 0) break; // a torn last line: its batch was never acknowledged
        const parsed = parseLine(raw.toString("utf8", start, nl));
        if (typeof parsed === "string") {
          const quarantinedTo = `${path}.corrupt`;
          await appendFile(quarantinedTo, raw.subarray(start, nl + 1), { flush: true });
          damage.push({ line: n, bytes: nl + 1 - start, quarantinedTo, reason: parsed });
        } else {
          loaded.set(parsed.itemId, parsed);
          lines++;
        }
        start = nl + 1;
      }
      bytes = start;
      if (start < raw.length) await truncate(path, start);
    }
    // Damaged lines leave the file (they are in .corrupt); many replaced lines are compacted away.
    if (damage.length > 0 || (lines > 2 * loaded.size && lines > 1_000))
      bytes = await rewrite(path, loaded.values());
    const store = new CatalogStore(path, await open(path, "a"), bytes);
    for (const [id, item] of loaded) store.items.set(id, item);
    for (const d of damage) {
      store.damage.push(d);
      options.onDamage?.(d);
    }
    return store;
  }

  get size(): number {
    return this.items.size;
  }

  has(itemId: string): boolean {
    return this.items.has(itemId);
  }

  get(itemId: string): StoredItem | undefined {
    return this.items.get(itemId);
  }

  values(): IterableIterator<StoredItem> {
    return this.items.values();
  }

  /**
   * Appends the batch in one write and fsyncs it; only then are the items
   * visible through `get`. A failed write is cut back off the file, so a
   * later batch never follows a torn line.
   */
  async put(batch: readonly StoredItem[]): Promise<void> {
    if (this.failed) throw this.failed;
    if (batch.length === 0) return;
    const bytes = Buffer.from(batch.map(formatLine).join(""), "utf8");
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await this.fh.write(bytes, written, bytes.length - written);
        written += bytesWritten;
      }
      await this.fh.datasync();
    } catch (err) {
      try {
        await this.fh.truncate(this.bytes);
      } catch (undo) {
        // Appending after bytes a reader cannot parse would lose what follows: stop.
        this.failed = new Error(`catalog store ${this.path} stopped: a failed write could not be undone`, {
          cause: undo,
        });
      }
      throw err;
    }
    this.bytes += bytes.length;
    for (const item of batch) this.items.set(item.itemId, item);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Writes `items` to a new file that replaces `path` atomically; returns its size. */
async function rewrite(path: string, items: Iterable<StoredItem>): Promise<number> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w");
  let size = 0;
  try {
    for (const item of items) {
      const line = Buffer.from(formatLine(item), "utf8");
      await fh.write(line);
      size += line.length;
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return size;
}

/** One stored line: the checksum of the JSON, a tab, the JSON, a newline. */
function formatLine(item: StoredItem): string {
  const json = JSON.stringify(item);
  return `${crc32(json).toString(16).padStart(8, "0")}\t${json}\n`;
}

/** The item of a line, or why the line is damaged. */
function parseLine(line: string): StoredItem | string {
  let json = line;
  if (!line.startsWith("{")) {
    const tab = line.indexOf("\t");
    if (tab !== 8) return "no checksum";
    json = line.slice(9);
    if (crc32(json).toString(16).padStart(8, "0") !== line.slice(0, 8)) return "checksum mismatch";
  }
  try {
    const item = JSON.parse(json) as StoredItem;
    return typeof item?.itemId === "string" ? item : "no itemId";
  } catch {
    return "not JSON";
  }
}
