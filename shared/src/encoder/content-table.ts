/**
 * Per-item content vectors for the stages after recall: item id -> the
 * all-MiniLM-L6-v2 vector of the `content` model (dataset items), updated
 * from the items topic (ItemUpdate.content_vector of new and changed
 * catalog items). Prerank and rank feed the vectors to their models
 * (docs/ranking.md); rerank's MMR step measures similarity with them.
 *
 * A vector is stored only when it lives in the same space as the table's:
 * the same dimension and, when both sides name it, the same encoder (an
 * ItemUpdate's `encoder` is "<name>@<first hex of the ONNX sha256>[;...]",
 * the content manifest records the full sha256).
 */
import type { Logger } from "../log.js";
import { CONTENT_MODEL, loadContentEmbeddings } from "./content.js";
import { ENCODER_DIM } from "./text-encoder.js";

export type ContentVectorOutcome = "stored" | "empty" | "incompatible";

export class ContentTable {
  /** Rows are views into the loaded version's matrix, or own arrays for updated items. */
  private readonly rows = new Map<string, Float32Array>();
  /** ItemUpdate vectors refused as incompatible (another encoder or dimension). */
  skipped = 0;
  /** Counts stored vectors: a reader that saw the same revision has seen every vector as it is now. */
  revision = 0;

  constructor(
    readonly dim: number,
    /** The `content` model version the table started from, or "none". */
    readonly version = "none",
    /** Full sha256 of the encoder's ONNX file ("" when unknown: any encoder is accepted). */
    readonly encoderSha = "",
  ) {}

  /**
   * The CURRENT `content` version of `store`. Without one (or when it cannot
   * be read) the table starts empty with the encoder's dimension, and fills
   * from the items topic only; the failure is logged.
   */
  static load(store: string, logger?: Logger, model = CONTENT_MODEL): ContentTable {
    try {
      const content = loadContentEmbeddings(store, undefined, model);
      const sha = (content.manifest.encoder as { onnx_sha256?: unknown } | undefined)?.onnx_sha256;
      const table = new ContentTable(content.dim, content.version, typeof sha === "string" ? sha : "");
      for (const [i, id] of content.itemIds.entries())
        table.rows.set(id, content.vectors.subarray(i * content.dim, (i + 1) * content.dim));
      return table;
    } catch (err) {
      logger?.warn(
        { err: err instanceof Error ? err.message : String(err), store },
        "no content embeddings: content vectors only for items from the items topic (run scripts/content-embeddings.sh)",
      );
      return new ContentTable(ENCODER_DIM);
    }
  }

  get size(): number {
    return this.rows.size;
  }

  /** The item's vector (do not modify it); undefined when unknown. Replaced, never mutated, on update. */
  get(itemId: string): Float32Array | undefined {
    return this.rows.get(itemId);
  }

  /** Whether an ItemUpdate's vector, stamped with `encoder`, is in this table's space. */
  compatible(vector: ArrayLike<number>, encoder: string): boolean {
    if (vector.length !== this.dim) return false;
    if (!this.encoderSha) return true;
    const sha = /@([0-9a-f]+)/.exec(encoder)?.[1] ?? "";
    return sha.length > 0 && this.encoderSha.startsWith(sha);
  }

  /** Stores an ItemUpdate's content vector (a copy) when it is non-empty, finite and compatible. */
  upsert(itemId: string, vector: ArrayLike<number>, encoder: string): ContentVectorOutcome {
    if (vector.length === 0) return "empty";
    const row = Float32Array.from(vector);
    if (!this.compatible(row, encoder) || !row.every(Number.isFinite)) {
      this.skipped++;
      return "incompatible";
    }
    this.rows.set(itemId, row);
    this.revision++;
    return "stored";
  }
}
