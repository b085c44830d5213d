/**
 * UpsertItems validation, independent of the encoder: every failure is
 * INVALID_ARGUMENT whose message starts with the field, e.g.
 * `items[0].modalities[1].dim: must be 512 for modality "image", got 256`.
 * The whole batch is rejected on the first problem (nothing is written).
 */
import { invalidArgument, requireId, requireMaxBytes } from "@recsys/shared";
import type { UpsertItemsRequest } from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";

/** The catalog's own modality: computed from the text fields, never supplied by callers. */
export const TEXT_MODALITY = "text";

export interface CatalogLimits {
  readonly maxBatch: number;
  /** Per title and per description, UTF-8 bytes. */
  readonly maxTextBytes: number;
  /** Caller-supplied modalities: name -> dimension. */
  readonly modalities: Readonly<Record<string, number>>;
  readonly maxGenres?: number;
  readonly maxGenreBytes?: number;
  readonly maxItemIdBytes?: number;
  /** created_at_ms may lie at most this far in the future (clock skew), ms. */
  readonly maxFutureMs?: number;
}

export interface ModalityInput {
  readonly modality: string;
  readonly values: Float32Array;
}

/** A validated item, ready to embed. */
export interface ItemInput {
  readonly itemId: string;
  readonly title: string;
  readonly description: string;
  readonly genres: string[];
  /** undefined when unknown (0 on the wire). */
  readonly year: number | undefined;
  /** 0 when the caller did not say. */
  readonly createdAtMs: number;
  readonly modalities: ModalityInput[];
}

export const MIN_YEAR = 1800;
export const MAX_YEAR = 2200;

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/** Checks the configured modalities: names and dimensions. Throws Error naming the variable. */
export function checkModalityConfig(modalities: Readonly<Record<string, number>>, variable: string): void {
  for (const [name, dim] of Object.entries(modalities)) {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(name))
      throw new Error(`${variable}: modality name "${name}" must match [a-z][a-z0-9_]{0,31}`);
    if (name === TEXT_MODALITY) throw new Error(`${variable}: "text" is the catalog's own modality`);
    if (!Number.isInteger(dim) || dim < 1 || dim > 65_536)
      throw new Error(`${variable}: dimension of "${name}" must be an integer in 1..65536, got ${dim}`);
  }
}

export function validateUpsert(
  req: UpsertItemsRequest,
  limits: CatalogLimits,
  nowMs = Date.now(),
): ItemInput[] {
  if (req.items.length === 0) throw invalidArgument("items", "must not be empty");
  if (req.items.length > limits.maxBatch)
    throw invalidArgument("items", `at most ${limits.maxBatch} items per call, got ${req.items.length}`);
  const maxGenres = limits.maxGenres ?? 32;
  const maxGenreBytes = limits.maxGenreBytes ?? 64;
  const maxFutureMs = limits.maxFutureMs ?? 86_400_000;
  const configured = Object.keys(limits.modalities).sort().join(", ") || "none";
  const firstIndex = new Map<string, number>();
  const out: ItemInput[] = [];
  for (const [i, item] of req.items.entries()) {
    const f = `items[${i}]`;
    const itemId = requireId(item.itemId, `${f}.item_id`, limits.maxItemIdBytes ?? 128);
    const earlier = firstIndex.get(itemId);
    if (earlier !== undefined) throw invalidArgument(`${f}.item_id`, `"${itemId}" repeats items[${earlier}]`);
    firstIndex.set(itemId, i);

    const title = requireMaxBytes(item.title, `${f}.title`, limits.maxTextBytes);
    if (CONTROL_CHARACTERS.test(title))
      throw invalidArgument(`${f}.title`, "must not contain control characters");
    const description = requireMaxBytes(item.description, `${f}.description`, limits.maxTextBytes);

    if (item.genres.length > maxGenres)
      throw invalidArgument(`${f}.genres`, `at most ${maxGenres} entries, got ${item.genres.length}`);
    const genres: string[] = [];
    for (const [g, raw] of item.genres.entries()) {
      const genre = raw.trim();
      if (genre.length === 0) throw invalidArgument(`${f}.genres[${g}]`, "must not be empty");
      if (CONTROL_CHARACTERS.test(genre) || genre.includes("|"))
        throw invalidArgument(`${f}.genres[${g}]`, "must not contain control characters or '|'");
      requireMaxBytes(genre, `${f}.genres[${g}]`, maxGenreBytes);
      if (!genres.includes(genre)) genres.push(genre);
    }

    if (item.year !== 0 && (!Number.isInteger(item.year) || item.year < MIN_YEAR || item.year > MAX_YEAR))
      throw invalidArgument(
        `${f}.year`,
        `must be 0 (unknown) or in ${MIN_YEAR}..${MAX_YEAR}, got ${item.year}`,
      );

    const createdAtMs = Number(item.createdAtMs);
    if (createdAtMs < 0)
      throw invalidArgument(`${f}.created_at_ms`, `must not be negative, got ${createdAtMs}`);
    if (createdAtMs > nowMs + maxFutureMs)
      throw invalidArgument(`${f}.created_at_ms`, `lies more than ${maxFutureMs} ms in the future`);

    const modalities: ModalityInput[] = [];
    const seen = new Map<string, number>();
    for (const [j, m] of item.modalities.entries()) {
      const mf = `${f}.modalities[${j}]`;
      if (m.modality === TEXT_MODALITY)
        throw invalidArgument(
          `${mf}.modality`,
          `"text" vectors are computed by the catalog from title, description and genres; configured modalities: ${configured}`,
        );
      const dim = limits.modalities[m.modality];
      if (dim === undefined)
        throw invalidArgument(
          `${mf}.modality`,
          `unknown modality "${m.modality}"; configured: ${configured}`,
        );
      const twin = seen.get(m.modality);
      if (twin !== undefined)
        throw invalidArgument(`${mf}.modality`, `"${m.modality}" repeats modalities[${twin}]`);
      seen.set(m.modality, j);
      if (m.dim !== dim)
        throw invalidArgument(`${mf}.dim`, `must be ${dim} for modality "${m.modality}", got ${m.dim}`);
      if (m.values.length !== m.dim)
        throw invalidArgument(`${mf}.dim`, `declares ${m.dim} but values has ${m.values.length} entries`);
      let nonZero = false;
      for (const [k, v] of m.values.entries()) {
        if (!Number.isFinite(v)) throw invalidArgument(`${mf}.values[${k}]`, `must be finite, got ${v}`);
        if (v !== 0) nonZero = true;
      }
      if (!nonZero)
        throw invalidArgument(`${mf}.values`, "must not be all zeros (a zero vector has no direction)");
      modalities.push({ modality: m.modality, values: Float32Array.from(m.values) });
    }

    if (title.trim() === "" && description.trim() === "" && genres.length === 0 && modalities.length === 0)
      throw invalidArgument(
        `${f}.title`,
        "the item has no text (title, description, genres) and no modality vectors: nothing to embed",
      );
    out.push({
      itemId,
      title,
      description,
      genres,
      year: item.year === 0 ? undefined : item.year,
      createdAtMs,
      modalities,
    });
  }
  return out;
}
