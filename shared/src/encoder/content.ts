/**
 * Item content embeddings: the text encoder applied to each item's title,
 * year and genres, published to the model store as model `content`:
 *
 *   <store>/content/<version>/
 *     item_ids.tsv   header `index\titem_id`; row i names vector i
 *     content.f32    n x dim raw little-endian float32, rows L2-normalised
 *     manifest.json  encoder identity (name, source, sha256 of ONNX and
 *                    tokenizer), dim, count, text template, file checksums
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { endianness } from "node:os";
import { join } from "node:path";
import type { ItemRecord } from "../data/dataset.js";
import {
  currentVersion,
  type ModelManifest,
  ModelStoreError,
  publishVersion,
  readVerifiedManifest,
  versionDir,
} from "../store/modelstore.js";
import type { SentenceEncoder } from "./text-encoder.js";

export const CONTENT_MODEL = "content";
export const CONTENT_IDS_FILE = "item_ids.tsv";
export const CONTENT_VECTORS_FILE = "content.f32";
/** How itemText() builds the text; recorded in the manifest with CONTENT_TEXT_RULES. */
export const CONTENT_TEXT_TEMPLATE = "{title} ({year}). Genres: {genre1}, {genre2}, ...";
export const CONTENT_TEXT_RULES =
  "a trailing ', The' / ', A' / ', An' of the title moves to the front; the year part is left out when " +
  "unknown; '(no genres listed)' or no genres leave out the Genres part; an empty title leaves out the title";

const NO_GENRES = "(no genres listed)";

export type ContentFields = Pick<ItemRecord, "title" | "genres" | "year">;

/** MovieLens files "The Shining" as "Shining, The": put the article back in front. */
export function naturalTitle(title: string): string {
  const t = title.trim();
  const m = /^(.+), (The|A|An)$/.exec(t);
  return m ? `${m[2]} ${m[1]}` : t;
}

/** "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy" */
export function itemText(item: ContentFields): string {
  const title = naturalTitle(item.title);
  const year = item.year !== undefined ? `(${item.year})` : "";
  const head = [title, year].filter((s) => s.length > 0).join(" ");
  const genres = item.genres.map((g) => g.trim()).filter((g) => g.length > 0 && g !== NO_GENRES);
  const parts: string[] = [];
  if (head) parts.push(`${head}.`);
  if (genres.length > 0) parts.push(`Genres: ${genres.join(", ")}`);
  return parts.join(" ");
}

export interface ContentProgress {
  readonly done: number;
  readonly total: number;
  readonly elapsedMs: number;
}

export interface ContentEmbeddings {
  readonly itemIds: string[];
  /** itemIds.length x dim, L2-normalised rows. */
  readonly vectors: Float32Array;
  readonly dim: number;
  readonly truncated: number;
  readonly elapsedMs: number;
}

/** Encodes every item, `chunk` items per encode() call (progress after each). */
export async function buildContentEmbeddings(
  items: readonly (ContentFields & { readonly itemId: string })[],
  encoder: SentenceEncoder,
  options: { chunk?: number; onProgress?: (p: ContentProgress) => void } = {},
): Promise<ContentEmbeddings> {
  const chunk = options.chunk ?? 512;
  const dim = encoder.dim;
  const vectors = new Float32Array(items.length * dim);
  let truncated = 0;
  const started = performance.now();
  for (let s = 0; s < items.length; s += chunk) {
    const slice = items.slice(s, s + chunk);
    const result = await encoder.encode(slice.map(itemText));
    vectors.set(result.vectors, s * dim);
    truncated += result.truncated.filter(Boolean).length;
    options.onProgress?.({
      done: s + slice.length,
      total: items.length,
      elapsedMs: performance.now() - started,
    });
  }
  return {
    itemIds: items.map((i) => i.itemId),
    vectors,
    dim,
    truncated,
    elapsedMs: performance.now() - started,
  };
}

function float32LE(values: Float32Array): Uint8Array {
  if (endianness() === "LE") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

function readFloat32LE(bytes: Buffer): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  if (endianness() === "LE") {
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Writes item_ids.tsv + content.f32 as a new version and points CURRENT at it. */
export function publishContentEmbeddings(
  store: string,
  version: string,
  embeddings: ContentEmbeddings,
  encoder: Pick<SentenceEncoder, "identity" | "maxTokens">,
  extra: Record<string, unknown> = {},
  model = CONTENT_MODEL,
): ModelManifest {
  const { itemIds, vectors, dim } = embeddings;
  if (vectors.length !== itemIds.length * dim) {
    throw new Error(`${vectors.length} values for ${itemIds.length} items x ${dim}`);
  }
  for (const id of itemIds) {
    if (id.length === 0 || /[\t\n\r]/.test(id))
      throw new Error(`item id ${JSON.stringify(id)} cannot go in a TSV`);
  }
  const dir = versionDir(store, model, version);
  mkdirSync(dir, { recursive: true });
  const rows = itemIds.map((id, i) => `${i}\t${id}\n`).join("");
  writeFileSync(join(dir, CONTENT_IDS_FILE), `index\titem_id\n${rows}`);
  writeFileSync(join(dir, CONTENT_VECTORS_FILE), float32LE(vectors));
  return publishVersion(store, model, version, [CONTENT_IDS_FILE, CONTENT_VECTORS_FILE], {
    kind: "content-embeddings",
    encoder: {
      name: encoder.identity.name,
      source: encoder.identity.source,
      onnx_sha256: encoder.identity.onnxSha256,
      tokenizer_sha256: encoder.identity.tokenizerSha256,
      max_tokens: encoder.maxTokens,
      pooling: "attention-mask mean",
      normalization: "l2",
    },
    dim,
    count: itemIds.length,
    dtype: "float32",
    byte_order: "little-endian",
    text_template: CONTENT_TEXT_TEMPLATE,
    text_rules: CONTENT_TEXT_RULES,
    truncated: embeddings.truncated,
    ...extra,
  });
}

export interface LoadedContentEmbeddings {
  readonly version: string;
  readonly manifest: ModelManifest;
  readonly itemIds: string[];
  readonly vectors: Float32Array;
  readonly dim: number;
}

/** Reads a published version (CURRENT by default), checking checksums, header and sizes. */
export function loadContentEmbeddings(
  store: string,
  version?: string,
  model = CONTENT_MODEL,
): LoadedContentEmbeddings {
  const v = version ?? currentVersion(store, model);
  if (!v) throw new ModelStoreError(`${model}: no CURRENT version in ${store}`);
  const manifest = readVerifiedManifest(store, model, v);
  const dir = versionDir(store, model, v);
  const dim = manifest.dim;
  const count = manifest.count;
  if (typeof dim !== "number" || typeof count !== "number") {
    throw new ModelStoreError(`${model}/${v}: manifest lacks dim or count`);
  }
  const lines = readFileSync(join(dir, CONTENT_IDS_FILE), "utf8").split("\n");
  if (lines[0] !== "index\titem_id") throw new ModelStoreError(`${model}/${v}: ${CONTENT_IDS_FILE} header`);
  const itemIds: string[] = [];
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!;
    if (line.length === 0) continue;
    const [index, id] = line.split("\t");
    if (Number(index) !== itemIds.length || !id) {
      throw new ModelStoreError(`${model}/${v}: ${CONTENT_IDS_FILE} line ${k + 1}: bad entry`);
    }
    itemIds.push(id);
  }
  const bytes = readFileSync(join(dir, CONTENT_VECTORS_FILE));
  if (itemIds.length !== count || bytes.length !== count * dim * 4) {
    throw new ModelStoreError(
      `${model}/${v}: ${itemIds.length} ids and ${bytes.length} bytes for count ${count} x dim ${dim}`,
    );
  }
  return { version: v, manifest, itemIds, vectors: readFloat32LE(bytes), dim };
}
