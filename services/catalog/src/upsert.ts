/**
 * UpsertItems: validate → embed every text of the batch → fuse → store the
 * whole batch (one fsync'd append) → publish one ItemUpdate per item on the
 * items topic. Nothing is written until every vector of the batch exists, so
 * an encoder failure leaves no partial items. Calls run one at a time: the
 * encoder has one worker anyway, and `created` stays exact when two calls
 * upsert the same id.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { itemText, RpcError, type SentenceEncoder } from "@recsys/shared";
import type {
  UpsertItemsRequest,
  UpsertItemsResponseSchema,
} from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";
import { type ItemUpdate, ItemUpdateSchema } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import { type FusionConfig, fuse } from "./fusion.js";
import type { StoredItem } from "./store.js";
import { type CatalogLimits, type ItemInput, validateUpsert } from "./validate.js";

/** What the catalog needs from a text encoder (tests use a fake one). */
export interface TextEmbedder {
  readonly dim: number;
  /** Identity stamped on the vectors: "<encoder name>@<first 16 hex of the ONNX sha256>". */
  readonly name: string;
  /** Whether `text` is longer than the encoder's limit (its embedding would see only the start). */
  truncates(text: string): boolean;
  embed(
    texts: readonly string[],
    signal?: AbortSignal,
  ): Promise<{ vectors: Float32Array; truncated: boolean[] }>;
}

export function sentenceEmbedder(encoder: SentenceEncoder): TextEmbedder {
  return {
    dim: encoder.dim,
    name: `${encoder.identity.name}@${encoder.identity.onnxSha256.slice(0, 16)}`,
    truncates: (text) => encoder.tokenize(text).truncated,
    embed: (texts, signal) => encoder.encode(texts, { signal }),
  };
}

export interface ItemStoreLike {
  get(itemId: string): StoredItem | undefined;
  put(batch: readonly StoredItem[]): Promise<void>;
}

export interface UpserterOptions {
  readonly limits: CatalogLimits;
  readonly fusion: FusionConfig;
  readonly store: ItemStoreLike;
  /** The loaded encoder; undefined while it cannot be loaded. */
  readonly embedder: () => TextEmbedder | undefined;
  /** Publishes on the items topic; resolves once durable. */
  readonly publish: (updates: readonly ItemUpdate[]) => Promise<void>;
  /** Ids of the dataset's items: they exist before any upsert (`created` false). */
  readonly datasetItemIds: ReadonlySet<string>;
  readonly now?: () => number;
  /** Called when the encoder fails at run time (the service turns NOT_SERVING and reloads it). */
  readonly onEncoderFailure?: (err: unknown) => void;
}

type UpsertResponse = MessageInitShape<typeof UpsertItemsResponseSchema>;

/** The text an item is embedded from: the dataset template (title, year, genres), then the description. */
export function catalogText(item: Pick<ItemInput, "title" | "genres" | "year" | "description">): {
  head: string;
  text: string;
} {
  const head = itemText({ title: item.title, genres: item.genres, year: item.year });
  const description = item.description.trim();
  return { head, text: description ? (head ? `${head} ${description}` : description) : head };
}

/** Which fields lost words to the encoder's limit, given that the whole text was truncated. */
export function truncatedFields(item: ItemInput, embedder: TextEmbedder): string[] {
  const hasDescription = item.description.trim().length > 0;
  const { head } = catalogText(item);
  if (hasDescription && !embedder.truncates(head)) return ["description"];
  const titleOnly = itemText({ title: item.title, genres: [], year: item.year });
  const fields = embedder.truncates(titleOnly) ? ["title"] : [];
  if (item.genres.length > 0) fields.push("genres");
  if (hasDescription) fields.push("description");
  return fields;
}

export class CatalogUpserter {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: UpserterOptions) {
    this.now = options.now ?? Date.now;
  }

  async upsert(req: UpsertItemsRequest, signal?: AbortSignal): Promise<UpsertResponse> {
    const items = validateUpsert(req, this.options.limits, this.now());
    const run = this.queue.then(() => this.apply(items, signal));
    this.queue = run.catch(() => {});
    return run;
  }

  private async apply(items: ItemInput[], signal?: AbortSignal): Promise<UpsertResponse> {
    const { store, fusion } = this.options;
    const embedder = this.options.embedder();
    if (!embedder) throw new RpcError(status.UNAVAILABLE, "the text encoder is not loaded");
    signal?.throwIfAborted();

    const textual = items.filter((it) => catalogText(it).text.length > 0);
    let embedded: { vectors: Float32Array; truncated: boolean[] };
    try {
      embedded = await embedder.embed(
        textual.map((it) => catalogText(it).text),
        signal,
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      this.options.onEncoderFailure?.(err);
      throw new RpcError(
        status.UNAVAILABLE,
        `the text encoder failed (${err instanceof Error ? err.message : String(err)}); nothing was stored`,
        { cause: err },
      );
    }
    const dim = embedder.dim;
    const textRow = new Map(textual.map((it, row) => [it.itemId, row]));
    const now = this.now();
    const encoder = `${embedder.name};fusion=${fusion.rule}`;
    const stored: StoredItem[] = [];
    const results: Array<{ itemId: string; created: boolean; truncatedFields: string[] }> = [];
    for (const it of items) {
      const row = textRow.get(it.itemId);
      const textVector =
        row === undefined ? undefined : embedded.vectors.subarray(row * dim, (row + 1) * dim);
      if (textVector && !textVector.every(Number.isFinite))
        throw new RpcError(status.INTERNAL, `items: the encoder gave a non-finite vector for ${it.itemId}`);
      const contentVector = fuse(fusion, textVector, it.modalities, dim);
      const previous = store.get(it.itemId);
      const created = previous === undefined && !this.options.datasetItemIds.has(it.itemId);
      // 0 means "now" for a new item; an update keeps the item's age (a dataset item its dataset age).
      const createdAtMs = it.createdAtMs > 0 ? it.createdAtMs : created ? now : (previous?.createdAtMs ?? 0);
      stored.push({
        itemId: it.itemId,
        title: it.title,
        description: it.description,
        genres: it.genres,
        year: it.year ?? 0,
        createdAtMs,
        modalities: it.modalities.map((m) => ({
          modality: m.modality,
          dim: m.values.length,
          values: Array.from(m.values),
        })),
        textVector: textVector ? Array.from(textVector) : [],
        contentVector: contentVector ? Array.from(contentVector) : [],
        encoder,
        updatedAtMs: now,
      });
      results.push({
        itemId: it.itemId,
        created,
        truncatedFields: row !== undefined && embedded.truncated[row] ? truncatedFields(it, embedder) : [],
      });
    }

    // A caller that gave up gets nothing half-done: stop before the first write.
    signal?.throwIfAborted();
    await store.put(stored);
    try {
      await this.options.publish(stored.map(toItemUpdate));
    } catch (err) {
      throw new RpcError(
        status.UNAVAILABLE,
        `items stored but not published to the items topic (${err instanceof Error ? err.message : String(err)}); ` +
          "retry: upserts are idempotent",
        { cause: err },
      );
    }
    return { results };
  }
}

export function toItemUpdate(item: StoredItem): ItemUpdate {
  return create(ItemUpdateSchema, {
    item: {
      itemId: item.itemId,
      title: item.title,
      description: item.description,
      genres: item.genres,
      year: item.year,
      createdAtMs: BigInt(item.createdAtMs),
      modalities: item.modalities.map((m) => ({ modality: m.modality, dim: m.dim, values: m.values })),
    },
    contentVector: item.contentVector,
    encoder: item.encoder,
    updatedAtMs: BigInt(item.updatedAtMs),
  });
}
