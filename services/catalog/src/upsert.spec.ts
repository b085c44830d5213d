import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { RpcError } from "@recsys/shared";
import {
  type ItemSchema,
  UpsertItemsRequestSchema,
} from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";
import type { ItemUpdate } from "@recsys/shared/gen/recsys/events/v1/events_pb.js";
import type { StoredItem } from "./store.js";
import { CatalogUpserter, catalogText, type TextEmbedder, type UpserterOptions } from "./upsert.js";

const DIM = 8;
/** "Word pieces" are characters here: a text longer than 60 characters is truncated. */
const MAX_CHARS = 60;

class FakeEmbedder implements TextEmbedder {
  readonly dim = DIM;
  readonly name = "fake@00ff";
  calls: string[][] = [];
  fail = false;
  truncates(text: string): boolean {
    return text.length > MAX_CHARS;
  }
  async embed(texts: readonly string[]) {
    this.calls.push([...texts]);
    if (this.fail) throw new Error("session lost");
    const vectors = new Float32Array(texts.length * DIM);
    for (const [i, t] of texts.entries()) {
      for (let d = 0; d < DIM; d++) vectors[i * DIM + d] = ((t.charCodeAt(d % t.length) || 1) % 13) + d;
      let n = 0;
      for (let d = 0; d < DIM; d++) n += vectors[i * DIM + d]! ** 2;
      for (let d = 0; d < DIM; d++) vectors[i * DIM + d]! /= Math.sqrt(n);
    }
    return { vectors, truncated: texts.map((t) => this.truncates(t)) };
  }
}

class MemoryStore {
  readonly items = new Map<string, StoredItem>();
  puts = 0;
  get(id: string) {
    return this.items.get(id);
  }
  async put(batch: readonly StoredItem[]) {
    this.puts++;
    for (const it of batch) this.items.set(it.itemId, it);
  }
}

function setup(overrides: Partial<UpserterOptions> = {}) {
  const embedder = new FakeEmbedder();
  const store = new MemoryStore();
  const published: ItemUpdate[] = [];
  const failures: unknown[] = [];
  let now = 1_700_000_000_000;
  const upserter = new CatalogUpserter({
    limits: { maxBatch: 10, maxTextBytes: 10_000, modalities: { image: 4 } },
    fusion: { rule: "text", weights: {} },
    store,
    embedder: () => embedder,
    publish: async (updates) => {
      published.push(...updates);
    },
    datasetItemIds: new Set(["1"]),
    now: () => now,
    onEncoderFailure: (err) => failures.push(err),
    ...overrides,
  });
  return { upserter, embedder, store, published, failures, tick: (ms: number) => (now += ms) };
}

type ItemInit = MessageInitShape<typeof ItemSchema>;
const req = (...items: ItemInit[]) => create(UpsertItemsRequestSchema, { items });
const toy: ItemInit = {
  itemId: "new-1",
  title: "Toy Robots",
  genres: ["Animation", "Children"],
  year: 2026,
  modalities: [{ modality: "image", dim: 4, values: [1, 2, 3, 4] }],
};

describe("CatalogUpserter", () => {
  it("embeds, stores every modality, publishes the item with its content vector", async () => {
    const { upserter, store, published, embedder } = setup();
    const res = await upserter.upsert(req(toy));
    assert.deepEqual(
      res.results?.map((r) => ({ ...r })),
      [{ itemId: "new-1", created: true, truncatedFields: [] }],
    );
    assert.deepEqual(embedder.calls, [["Toy Robots (2026). Genres: Animation, Children"]]);
    const stored = store.get("new-1")!;
    assert.deepEqual(stored.modalities, [{ modality: "image", dim: 4, values: [1, 2, 3, 4] }]);
    assert.equal(stored.textVector.length, DIM);
    assert.deepEqual(stored.contentVector, stored.textVector);
    assert.equal(stored.createdAtMs, 1_700_000_000_000, "created_at 0 means now for a new item");
    assert.equal(published.length, 1);
    const update = published[0]!;
    assert.equal(update.item!.itemId, "new-1");
    assert.deepEqual(update.item!.genres, ["Animation", "Children"]);
    assert.equal(update.item!.modalities[0]!.modality, "image");
    assert.equal(update.contentVector.length, DIM);
    assert.equal(update.encoder, "fake@00ff;fusion=text");
  });

  it("is idempotent by item id: the same item again replaces it, created false, age kept", async () => {
    const { upserter, store, published, tick } = setup();
    await upserter.upsert(req(toy));
    tick(60_000);
    const again = await upserter.upsert(req({ ...toy, title: "Toy Robots Returns" }));
    assert.equal(again.results?.[0]?.created, false);
    assert.equal(store.items.size, 1);
    assert.equal(store.get("new-1")!.title, "Toy Robots Returns");
    assert.equal(
      store.get("new-1")!.createdAtMs,
      1_700_000_000_000,
      "an update does not make the item new again",
    );
    assert.equal(published.length, 2);
    const dataset = await upserter.upsert(req({ itemId: "1", title: "Toy Story" }));
    assert.equal(dataset.results?.[0]?.created, false, "a dataset item exists before any upsert");
    assert.equal(store.get("1")!.createdAtMs, 0, "a dataset item keeps its dataset age");
  });

  it("flags the fields whose text the encoder's limit cut", async () => {
    const { upserter } = setup();
    const res = await upserter.upsert(
      req(
        { itemId: "a", title: "Short", description: "d".repeat(200) },
        { itemId: "b", title: "T".repeat(100), genres: ["Drama"], description: "more" },
        { itemId: "c", title: "Fine", genres: ["Drama"] },
      ),
    );
    assert.deepEqual(
      res.results?.map((r) => r.truncatedFields),
      [["description"], ["title", "genres", "description"], []],
    );
  });

  it("an encoder failure stores and publishes nothing, and reports the failure", async () => {
    const { upserter, embedder, store, published, failures } = setup();
    embedder.fail = true;
    await assert.rejects(
      upserter.upsert(req(toy, { ...toy, itemId: "new-2" })),
      (err: unknown) =>
        err instanceof RpcError && err.code === status.UNAVAILABLE && /nothing was stored/.test(err.message),
    );
    assert.equal(store.puts, 0);
    assert.equal(published.length, 0);
    assert.equal(failures.length, 1);
  });

  it("an invalid item rejects the whole batch before any work", async () => {
    const { upserter, embedder, store } = setup();
    await assert.rejects(
      upserter.upsert(
        req(toy, {
          itemId: "bad",
          modalities: [{ modality: "image", dim: 4, values: [0, Number.NaN, 0, 1] }],
        }),
      ),
      (err: unknown) => err instanceof RpcError && err.code === status.INVALID_ARGUMENT,
    );
    assert.equal(embedder.calls.length, 0);
    assert.equal(store.puts, 0);
  });

  it("no encoder loaded: UNAVAILABLE", async () => {
    const { upserter } = setup({ embedder: () => undefined });
    await assert.rejects(
      upserter.upsert(req(toy)),
      (err: unknown) => (err as RpcError).code === status.UNAVAILABLE,
    );
  });

  it("a failed publish answers UNAVAILABLE (retry is safe: the upsert is idempotent)", async () => {
    const { upserter, store } = setup({
      publish: async () => {
        throw new Error("broker down");
      },
    });
    await assert.rejects(
      upserter.upsert(req(toy)),
      (err: unknown) => (err as RpcError).code === status.UNAVAILABLE && /retry/.test((err as Error).message),
    );
    assert.equal(store.items.size, 1);
  });

  it("weighted fusion: vectors-only items get a content vector too", async () => {
    const { upserter, store } = setup({ fusion: { rule: "weighted", weights: { text: 1, image: 0.5 } } });
    await upserter.upsert(
      req({ itemId: "v", modalities: [{ modality: "image", dim: 4, values: [1, 0, 0, 1] }] }),
    );
    const stored = store.get("v")!;
    assert.deepEqual(stored.textVector, []);
    assert.equal(stored.contentVector.length, DIM);
  });

  it("builds the dataset's text template, then the description", () => {
    assert.equal(
      catalogText({ title: "Shining, The", genres: ["Horror"], year: 1980, description: "A hotel." }).text,
      "The Shining (1980). Genres: Horror A hotel.",
    );
    assert.equal(
      catalogText({ title: "", genres: [], year: undefined, description: "Only words" }).text,
      "Only words",
    );
  });
});
