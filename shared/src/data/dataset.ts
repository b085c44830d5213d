/**
 * Reader for the canonical on-disk dataset written by `npm run data`:
 *   items.tsv         item_id  title  genres(pipe-separated)  year
 *   interactions.tsv  user_id  item_id  timestamp(unix s)  rating
 * interactions are sorted by user, then timestamp, then item id (the
 * deterministic tie-break), so each user's rows form a time-ordered run.
 */
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

export interface ItemRecord {
  readonly itemId: string;
  readonly title: string;
  readonly genres: readonly string[];
  readonly year: number | undefined;
}

export interface Interaction {
  readonly userId: string;
  readonly itemId: string;
  /** Unix epoch milliseconds. */
  readonly timestampMs: number;
  readonly rating: number;
}

export interface DatasetManifest {
  readonly name: string;
  readonly source: string;
  readonly num_users: number;
  readonly num_items: number;
  readonly num_interactions: number;
  readonly min_timestamp: number;
  readonly max_timestamp: number;
}

export class DatasetError extends Error {}

function requireFile(dir: string, name: string): string {
  const path = join(dir, name);
  if (!existsSync(path)) throw new DatasetError(`${path} is missing: run \`npm run data\` first`);
  return path;
}

export function readManifest(dir: string): DatasetManifest {
  return JSON.parse(readFileSync(requireFile(dir, "manifest.json"), "utf8")) as DatasetManifest;
}

async function* tsvRows(path: string, expectedHeader: string[]): AsyncGenerator<string[]> {
  const lines = createInterface({
    input: createReadStream(path, "utf8"),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let header = true;
  for await (const line of lines) {
    if (header) {
      const cols = line.split("\t");
      if (expectedHeader.some((h, i) => cols[i] !== h)) {
        throw new DatasetError(`${path}: expected header ${expectedHeader.join(",")}, got ${cols.join(",")}`);
      }
      header = false;
      continue;
    }
    if (line.length > 0) yield line.split("\t");
  }
}

export async function loadItems(dir: string): Promise<ItemRecord[]> {
  const items: ItemRecord[] = [];
  for await (const [itemId = "", title = "", genres = "", year = ""] of tsvRows(
    requireFile(dir, "items.tsv"),
    ["item_id", "title", "genres", "year"],
  )) {
    const y = Number.parseInt(year, 10);
    items.push({
      itemId,
      title,
      genres: genres ? genres.split("|") : [],
      year: Number.isFinite(y) ? y : undefined,
    });
  }
  return items;
}

export async function loadInteractions(dir: string): Promise<Interaction[]> {
  const rows: Interaction[] = [];
  for await (const [userId = "", itemId = "", ts = "0", rating = "0"] of tsvRows(
    requireFile(dir, "interactions.tsv"),
    ["user_id", "item_id", "timestamp", "rating"],
  )) {
    rows.push({ userId, itemId, timestampMs: Number(ts) * 1000, rating: Number(rating) });
  }
  return rows;
}

export interface Dataset {
  readonly dir: string;
  readonly items: ItemRecord[];
  readonly interactions: Interaction[];
}

export async function loadDataset(dir: string): Promise<Dataset> {
  const [items, interactions] = await Promise.all([loadItems(dir), loadInteractions(dir)]);
  return { dir, items, interactions };
}

/** Groups time-ordered interactions by user (input order is kept within a user). */
export function groupByUser(interactions: readonly Interaction[]): Map<string, Interaction[]> {
  const byUser = new Map<string, Interaction[]>();
  for (const row of interactions) {
    let list = byUser.get(row.userId);
    if (!list) byUser.set(row.userId, (list = []));
    list.push(row);
  }
  return byUser;
}
