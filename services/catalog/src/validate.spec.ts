import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { RpcError } from "@recsys/shared";
import {
  type ItemSchema,
  UpsertItemsRequestSchema,
} from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";
import { type CatalogLimits, checkModalityConfig, validateUpsert } from "./validate.js";

const limits: CatalogLimits = { maxBatch: 4, maxTextBytes: 1_000, modalities: { image: 4, video: 3 } };
const NOW = 1_800_000_000_000;

type ItemInit = MessageInitShape<typeof ItemSchema>;
const good: ItemInit = {
  itemId: "m1",
  title: "Toy Adventure",
  description: "Toys get lost.",
  genres: ["Animation", "Children"],
  year: 2026,
  modalities: [{ modality: "image", dim: 4, values: [0.1, 0.2, 0.3, 0.4] }],
};
const request = (...items: ItemInit[]) => create(UpsertItemsRequestSchema, { items });
const withModality = (m: { modality: string; dim: number; values: number[] }) => ({
  ...good,
  modalities: [m],
});

function rejects(items: ItemInit[], pattern: RegExp, name: string) {
  assert.throws(
    () => validateUpsert(request(...items), limits, NOW),
    (err: unknown) =>
      err instanceof RpcError && err.code === status.INVALID_ARGUMENT && pattern.test(err.message),
    name,
  );
}

describe("validateUpsert", () => {
  it("accepts a complete item and normalises it", () => {
    const [item] = validateUpsert(
      request({ ...good, genres: [" Animation", "Animation", "Children "] }),
      limits,
      NOW,
    );
    assert.equal(item!.itemId, "m1");
    assert.deepEqual(item!.genres, ["Animation", "Children"]);
    assert.equal(item!.year, 2026);
    assert.equal(item!.createdAtMs, 0);
    assert.deepEqual(
      Array.from(item!.modalities[0]!.values),
      Array.from(Float32Array.from([0.1, 0.2, 0.3, 0.4])),
    );
  });

  it("accepts text only, vectors only, and year 0 as unknown", () => {
    const items = validateUpsert(
      request(
        { itemId: "a", title: "Only text" },
        { itemId: "b", modalities: [{ modality: "video", dim: 3, values: [1, 0, 0] }] },
        { itemId: "c", genres: ["Drama"], year: 0 },
      ),
      limits,
      NOW,
    );
    assert.equal(items.length, 3);
    assert.equal(items[2]!.year, undefined);
  });

  const cases: Array<[string, ItemInit[], RegExp]> = [
    ["empty batch", [], /^items: must not be empty/],
    ["batch over the limit", [1, 2, 3, 4, 5].map((k) => ({ ...good, itemId: `m${k}` })), /^items: at most 4/],
    ["empty item_id", [{ ...good, itemId: "" }], /^items\[0\]\.item_id: must not be empty/],
    [
      "oversized item_id",
      [{ ...good, itemId: "x".repeat(129) }],
      /^items\[0\]\.item_id: must be at most 128 bytes/,
    ],
    [
      "item_id with a newline",
      [{ ...good, itemId: "a\nb" }],
      /^items\[0\]\.item_id: must not contain control/,
    ],
    ["duplicate item_id", [good, { ...good }], /^items\[1\]\.item_id: "m1" repeats items\[0\]/],
    [
      "no text and no vectors",
      [{ itemId: "e", title: "  ", modalities: [] }],
      /^items\[0\]\.title: the item has no text/,
    ],
    [
      "oversized title",
      [{ ...good, title: "t".repeat(1_001) }],
      /^items\[0\]\.title: must be at most 1000 bytes/,
    ],
    [
      "oversized description",
      [{ ...good, description: "d".repeat(1_001) }],
      /^items\[0\]\.description: must be at most/,
    ],
    ["empty genre", [{ ...good, genres: ["Drama", " "] }], /^items\[0\]\.genres\[1\]: must not be empty/],
    ["genre with a pipe", [{ ...good, genres: ["A|B"] }], /^items\[0\]\.genres\[0\]: must not contain/],
    [
      "too many genres",
      [{ ...good, genres: Array.from({ length: 33 }, (_, k) => `g${k}`) }],
      /^items\[0\]\.genres: at most 32/,
    ],
    [
      "year out of range",
      [{ ...good, year: 1066 }],
      /^items\[0\]\.year: must be 0 \(unknown\) or in 1800\.\.2200/,
    ],
    [
      "negative created_at_ms",
      [{ ...good, createdAtMs: -5n }],
      /^items\[0\]\.created_at_ms: must not be negative/,
    ],
    [
      "created_at_ms far in the future",
      [{ ...good, createdAtMs: BigInt(NOW + 2 * 86_400_000) }],
      /^items\[0\]\.created_at_ms: lies more than/,
    ],
    [
      "unknown modality",
      [withModality({ modality: "audio", dim: 4, values: [1, 2, 3, 4] })],
      /^items\[0\]\.modalities\[0\]\.modality: unknown modality "audio"; configured: image, video/,
    ],
    [
      "caller-supplied text vector",
      [withModality({ modality: "text", dim: 4, values: [1, 2, 3, 4] })],
      /^items\[0\]\.modalities\[0\]\.modality: "text" vectors are computed by the catalog/,
    ],
    [
      "dimension differs from the configured one",
      [withModality({ modality: "image", dim: 3, values: [1, 2, 3] })],
      /^items\[0\]\.modalities\[0\]\.dim: must be 4 for modality "image", got 3/,
    ],
    [
      "values differ from the declared dimension",
      [withModality({ modality: "image", dim: 4, values: [1, 2, 3] })],
      /^items\[0\]\.modalities\[0\]\.dim: declares 4 but values has 3 entries/,
    ],
    [
      "NaN in a vector",
      [withModality({ modality: "image", dim: 4, values: [1, Number.NaN, 3, 4] })],
      /^items\[0\]\.modalities\[0\]\.values\[1\]: must be finite, got NaN/,
    ],
    [
      "infinity in a vector",
      [withModality({ modality: "image", dim: 4, values: [1, 2, 3, Number.POSITIVE_INFINITY] })],
      /^items\[0\]\.modalities\[0\]\.values\[3\]: must be finite, got Infinity/,
    ],
    [
      "all-zero vector",
      [withModality({ modality: "image", dim: 4, values: [0, 0, 0, 0] })],
      /^items\[0\]\.modalities\[0\]\.values: must not be all zeros/,
    ],
    [
      "a modality twice",
      [{ ...good, modalities: [good.modalities![0]!, { modality: "image", dim: 4, values: [1, 1, 1, 1] }] }],
      /^items\[0\]\.modalities\[1\]\.modality: "image" repeats modalities\[0\]/,
    ],
    [
      "the field of a later item and modality",
      [
        good,
        {
          ...good,
          itemId: "m2",
          modalities: [good.modalities![0]!, { modality: "video", dim: 2, values: [1, 2] }],
        },
      ],
      /^items\[1\]\.modalities\[1\]\.dim: must be 3 for modality "video", got 2/,
    ],
  ];
  for (const [name, items, pattern] of cases) {
    it(`rejects ${name}`, () => rejects(items, pattern, name));
  }
});

describe("checkModalityConfig", () => {
  it("accepts names and positive dimensions", () => {
    checkModalityConfig({ image: 512, video_clip: 256 }, "V");
  });
  for (const [name, modalities, pattern] of [
    ["the reserved text modality", { text: 384 }, /"text" is the catalog's own/],
    ["a zero dimension", { image: 0 }, /dimension of "image"/],
    ["a fractional dimension", { image: 1.5 }, /dimension of "image"/],
    ["an upper-case name", { Image: 3 }, /modality name "Image"/],
  ] as const) {
    it(`rejects ${name}`, () =>
      assert.throws(() => checkModalityConfig(modalities as Record<string, number>, "V"), pattern));
  }
});
