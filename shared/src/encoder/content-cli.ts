/**
 * Batch job: embeds every item of a dataset with the pretrained text encoder
 * and publishes the vectors to the model store as model `content`.
 *   node shared/dist/encoder/content-cli.js [--data data/ml-latest-small] [--store var/models]
 *     [--encoder var/encoder/all-minilm-l6-v2] [--batch 32] [--threads 1] [--intra-op 1]
 * (wrapped by scripts/content-embeddings.sh, which fetches the encoder first).
 */
import { parseArgs } from "node:util";
import { loadItems, readManifest } from "../data/dataset.js";
import { OnnxPool } from "../onnx/pool.js";
import { newVersionId } from "../store/modelstore.js";
import { buildContentEmbeddings, CONTENT_MODEL, publishContentEmbeddings } from "./content.js";
import { DEFAULT_ENCODER_DIR, SentenceEncoder } from "./text-encoder.js";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: process.env.RECSYS_DATA_DIR ?? "data/ml-latest-small" },
    store: { type: "string", default: process.env.RECSYS_MODEL_STORE ?? "var/models" },
    encoder: { type: "string", default: process.env.RECSYS_ENCODER_DIR ?? DEFAULT_ENCODER_DIR },
    model: { type: "string", default: CONTENT_MODEL },
    batch: { type: "string", default: "32" },
    threads: { type: "string", default: "1" },
    "intra-op": { type: "string", default: "1" },
  },
});

const say = (msg: string): void => void process.stderr.write(`[content] ${msg}\n`);
const positive = (name: string, raw: string): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return n;
};

const batchSize = positive("batch", values.batch);
const threads = positive("threads", values.threads);
const intraOp = positive("intra-op", values["intra-op"]);
const started = performance.now();
const items = await loadItems(values.data);
let dataInfo: Record<string, unknown> = { dir: values.data, num_items: items.length };
try {
  const m = readManifest(values.data);
  dataInfo = { ...dataInfo, name: m.name, source: m.source };
} catch {
  // a dataset without manifest.json is fine
}

const pool = new OnnxPool({ threads, intraOpNumThreads: intraOp });
try {
  const encoder = await SentenceEncoder.load(values.encoder, pool, { batchSize, maxInFlight: threads + 1 });
  say(
    `encoder ${encoder.identity.name} (${encoder.identity.source}), ${items.length} items, batch ${batchSize}`,
  );
  let lastReport = 0;
  const embeddings = await buildContentEmbeddings(items, encoder, {
    onProgress: ({ done, total, elapsedMs }) => {
      if (done < total && elapsedMs - lastReport < 2000) return;
      lastReport = elapsedMs;
      const rate = done / (elapsedMs / 1000);
      say(`${done}/${total} (${((100 * done) / total).toFixed(1)}%), ${rate.toFixed(0)} items/s`);
    },
  });
  const seconds = embeddings.elapsedMs / 1000;
  const version = newVersionId("content");
  publishContentEmbeddings(
    values.store,
    version,
    embeddings,
    encoder,
    {
      data: dataInfo,
      build: {
        batch_size: batchSize,
        threads,
        intra_op_threads: intraOp,
        encode_seconds: Number(seconds.toFixed(2)),
        items_per_second: Number((items.length / seconds).toFixed(1)),
      },
    },
    values.model,
  );
  const total = (performance.now() - started) / 1000;
  say(
    `published ${values.model}/${version}: ${items.length} x ${embeddings.dim}, ${embeddings.truncated} truncated, ` +
      `encode ${seconds.toFixed(1)}s (${(items.length / seconds).toFixed(0)} items/s), total ${total.toFixed(1)}s`,
  );
} finally {
  await pool.close();
}
