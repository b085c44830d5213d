import { DEFAULT_ENCODER_DIR, env } from "@recsys/shared";
import { busConfigSpec } from "@recsys/shared/bus";

/** Environment variables read by the catalog service (besides the common ones). */
export const catalogConfigSpec = {
  ...busConfigSpec,
  /** gRPC listen address (recsys.catalog.v1.CatalogService). */
  RECSYS_CATALOG_ADDR: env.str("127.0.0.1:50057"),
  /** Caller-supplied modalities and their dimensions, "name=dim,...". "text" is the catalog's own. */
  RECSYS_CATALOG_MODALITIES: env.numberMap("image=512,video=256"),
  /** How the content vector is made: "text" (the text vector alone) or "weighted" (see fusion.ts). */
  RECSYS_CATALOG_FUSION: env.oneOf(["text", "weighted"], "text"),
  /** Weights of the "weighted" fusion, "modality=weight,..."; a modality left out weighs 1. */
  RECSYS_CATALOG_FUSION_WEIGHTS: env.numberMap("text=1,image=0.5,video=0.5"),
  /** Items per UpsertItems call. */
  RECSYS_CATALOG_MAX_BATCH: env.int(256, 1, 10_000),
  /** Largest title or description accepted, UTF-8 bytes (the embedding sees the first 256 word pieces). */
  RECSYS_CATALOG_MAX_TEXT_BYTES: env.int(64 * 1024, 256, 16 * 1024 * 1024),
  /** Directory of the item store (items.jsonl). */
  RECSYS_CATALOG_STORE_DIR: env.str("var/catalog"),
  /** The pretrained text encoder (scripts/fetch-encoder.sh). */
  RECSYS_ENCODER_DIR: env.str(DEFAULT_ENCODER_DIR),
  /** ONNX worker threads of the encoder. */
  RECSYS_ENCODER_THREADS: env.int(1, 1, 64),
  /** While the encoder cannot be loaded (health NOT_SERVING), how often to try again, ms. */
  RECSYS_ENCODER_RETRY_MS: env.int(30_000, 100, 3_600_000),
};
