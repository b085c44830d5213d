/**
 * The item tower of a two-graph ranking model (prerank's `item.onnx`), run
 * once per item and model version instead of once per request. A two-tower
 * model's item side depends on the item alone, so its vectors are computed
 * for the whole catalogue when the version loads, and a request only gathers
 * its candidates' rows ([N, D], D = 32) for the scoring graph: no content
 * vectors are copied or shipped to the ONNX worker per request.
 *
 * A vector is keyed on its item's feature row version (ItemFeatureTable): an
 * item that is new or was updated since (another title, genres, content
 * vector) is missing or stale, and the next request that holds it computes
 * it through the item tower, with the others of that request, and stores it.
 */
import type { OnnxPool } from "../onnx/pool.js";
import { buildItemFeeds, type ItemFeatureTable, type ItemVectors, OOV } from "./features.js";

/** An item tower answered NaN or inf (e.g. an absurd content vector): the request's fallback says so. */
export class NonFiniteOutputError extends Error {
  override readonly name = "NonFiniteOutputError";
}

export class ItemVectorTable {
  private vectors: Float32Array;
  /** Per feature row, the row version its vector was computed from (0: none). */
  private builtAt: Int32Array;

  constructor(
    private readonly features: ItemFeatureTable,
    /** D: the item vector size (manifest.item_vec_dim). */
    readonly dim: number,
    /** The item tower graph. */
    private readonly modelPath: string,
    /** Its inputs (the item inputs of the ranking contract). */
    private readonly inputs: ReadonlySet<string>,
    private readonly pool: OnnxPool,
  ) {
    const capacity = Math.max(1024, features.size);
    this.vectors = new Float32Array(capacity * dim);
    this.builtAt = new Int32Array(capacity);
  }

  /** Items whose vector came out NaN or inf (an absurd content vector), never stored. */
  nonFiniteItems = 0;

  /**
   * Computes the vectors of `itemIds` (the catalogue, when a version loads)
   * in batches. An item whose vector is not finite is left out, so one bad
   * item update cannot keep a version from loading; requests that hold it
   * fall back (nonfinite_output), as a one-graph model's would.
   */
  async fill(itemIds: readonly string[], batch = 2048): Promise<void> {
    for (let i = 0; i < itemIds.length; i += batch) await this.gather(itemIds.slice(i, i + batch), 0, false);
  }

  /**
   * The vectors of `itemIds` in order: stored rows, and for items missing or
   * stale one item tower run (stored for the next request). `oov` counts the
   * items from index `oovFrom` on out of the vocabulary. Throws when that run
   * fails or (`strict`) gives an item a non-finite vector: the caller's
   * fallback answers.
   */
  async gather(itemIds: readonly string[], oovFrom = 0, strict = true): Promise<ItemVectors> {
    const D = this.dim;
    const N = itemIds.length;
    const data = new Float32Array(N * D);
    const missing: number[] = [];
    let oov = 0;
    for (let i = 0; i < N; i++) {
      const slot = this.features.slotOf(itemIds[i]!);
      if (i >= oovFrom && this.features.vocabIndexAt(slot, itemIds[i]!) === OOV) oov++;
      if (slot >= 0 && slot < this.builtAt.length && this.builtAt[slot] === this.features.rowVersion(slot))
        data.set(this.vectors.subarray(slot * D, slot * D + D), i * D);
      else missing.push(i);
    }
    if (missing.length > 0) await this.compute(itemIds, missing, data, strict);
    return { data, dim: D, oov };
  }

  private async compute(
    itemIds: readonly string[],
    missing: readonly number[],
    data: Float32Array,
    strict: boolean,
  ) {
    const D = this.dim;
    const ids = missing.map((i) => itemIds[i]!);
    const { feeds } = buildItemFeeds(this.features, ids, this.inputs);
    // the rows as they were when the feeds were written (a later update makes them stale again)
    const slots = ids.map((id) => this.features.slotOf(id));
    const versions = slots.map((slot) => (slot >= 0 ? this.features.rowVersion(slot) : 0));
    const result = await this.pool.run(this.modelPath, feeds);
    const out = result.outputs.item_vec;
    if (out?.type !== "float32" || out.dims.join(",") !== `${ids.length},${D}`)
      throw new Error(
        `item tower output item_vec is ${out?.type} [${out?.dims.join(",")}], expected float32 [${ids.length},${D}]`,
      );
    const vectors = new Float32Array(out.data);
    let nonFinite: string | undefined;
    for (let k = 0; k < ids.length; k++) {
      const row = vectors.subarray(k * D, k * D + D);
      if (!row.every(Number.isFinite)) {
        // never stored: the item is computed again next time (e.g. after its content vector was fixed)
        nonFinite ??= ids[k]!;
        this.nonFiniteItems++;
        continue;
      }
      data.set(row, missing[k]! * D);
      const slot = slots[k]!;
      if (slot < 0) continue; // unknown to the catalogue and the content table: not kept
      this.grow(slot + 1);
      this.vectors.set(row, slot * D);
      this.builtAt[slot] = versions[k]!;
    }
    if (nonFinite !== undefined && strict)
      throw new NonFiniteOutputError(`item tower output item_vec has non-finite values (item ${nonFinite})`);
  }

  private grow(needed: number): void {
    if (needed <= this.builtAt.length) return;
    let capacity = this.builtAt.length * 2;
    while (capacity < needed) capacity *= 2;
    const vectors = new Float32Array(capacity * this.dim);
    vectors.set(this.vectors);
    const builtAt = new Int32Array(capacity);
    builtAt.set(this.builtAt);
    this.vectors = vectors;
    this.builtAt = builtAt;
  }
}
