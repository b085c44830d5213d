/**
 * The catalog's durable item store: an append-only JSON-lines file,
 * `<dir>/items.jsonl`, one stored item per line, the latest line of an item
 * id winning. A batch is one write and one fdatasync, after everything in it
 * was computed, so a batch is either stored whole or (after a crash mid-write)
 * cut at a line boundary that `open` repairs: a torn last line is dropped.
 *
 * `open` reads the file into memory and rewrites it without replaced lines
 * (write to a temporary file, fsync, rename) when more than half of its lines
 * are stale. The file holds every modality an item has, as given, plus the
 * text and fused vectors, so a restart never re-embeds anything.
 */
import { existsSync, mkdirSync } from "node:fs";
import { type FileHandle, open, readFile, rename, truncate } from "node:fs/promises";
import { join } from "node:path";

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

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    /** Bytes of whole lines in the file. */
    private bytes: number,
  ) {}

  static async open(dir: string): Promise<CatalogStore> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "items.jsonl");
    const loaded = new Map<string, StoredItem>();
    let lines = 0;
    let bytes = 0; // length of the whole, parsable lines
    if (existsSync(path)) {
      const raw = await readFile(path);
      let start = 0;
      while (start < raw.length) {
        const nl = raw.indexOf(0x0a, start);
        if (nl < 0) break; // a torn last line: its batch was never acknowledged
        let item: StoredItem;
        try {
          item = JSON.parse(raw.toString("utf8", start, nl)) as StoredItem;
        } catch {
          break;
        }
        if (typeof item?.itemId !== "string") break;
        loaded.set(item.itemId, item);
        lines++;
        start = nl + 1;
      }
      bytes = start;
      if (start < raw.length) await truncate(path, start);
    }
    if (lines > 2 * loaded.size && lines > 1_000) bytes = await rewrite(path, loaded.values());
    const store = new CatalogStore(path, await open(path, "a"), bytes);
    for (const [id, item] of loaded) store.items.set(id, item);
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
    if (batch.length === 0) return;
    const bytes = Buffer.from(batch.map((item) => `${JSON.stringify(item)}\n`).join(""), "utf8");
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await this.fh.write(bytes, written, bytes.length - written);
        written += bytesWritten;
      }
      await this.fh.datasync();
    } catch (err) {
      await this.fh.truncate(this.bytes).catch(() => {});
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
      const line = Buffer.from(`${JSON.stringify(item)}\n`, "utf8");
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
