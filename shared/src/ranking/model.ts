/**
 * The learned prerank and rank models as exported by services/trainer (see
 * docs/ranking.md for the artifact contract): one ONNX graph plus item, user
 * and genre vocabularies, loaded by ModelWatcher and validated before they
 * serve: the manifest's sizes and tensor signature against the contract, the
 * vocabularies, and a probe batch whose outputs must be finite.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ItemCatalog } from "../catalog.js";
import type { ContentTable } from "../encoder/content-table.js";
import type { UserView } from "../funnel/types.js";
import { EventType } from "../gen/recsys/common/v1/common_pb.js";
import type { OnnxPool, TensorData } from "../onnx/pool.js";
import type { ModelManifest } from "../store/modelstore.js";
import {
  buildRankingFeeds,
  type FeatureSpace,
  type FeedOptions,
  ItemFeatureTable,
  rankingHistory,
} from "./features.js";
import { ItemVectorTable } from "./item-tower.js";

export type RankingInputName =
  | "user_idx"
  | "hist_item_idx"
  | "hist_genres"
  | "hist_year"
  | "hist_content"
  | "cand_item_idx"
  | "cand_genres"
  | "cand_year"
  | "cand_content"
  | "cand_has_content"
  | "cand_recall"
  | "cand_item_vec"
  | "hist_item_vec";

/**
 * Dimensions of the contract: 1 = the one user, L history length, G genres,
 * C content, N candidates, R recall features (manifest.recall_features),
 * D item vector (manifest.item_vec_dim, models with an item tower).
 */
type Dim = "1" | "L" | "G" | "C" | "N" | "R" | "D";

/** Every input of the contract with its dtype and shape. */
export const RANKING_INPUTS: Readonly<
  Record<RankingInputName, { readonly dtype: "int64" | "float32"; readonly shape: readonly Dim[] }>
> = {
  user_idx: { dtype: "int64", shape: ["1"] },
  hist_item_idx: { dtype: "int64", shape: ["1", "L"] },
  hist_genres: { dtype: "int64", shape: ["1", "L", "G"] },
  hist_year: { dtype: "int64", shape: ["1", "L"] },
  hist_content: { dtype: "float32", shape: ["1", "L", "C"] },
  cand_item_idx: { dtype: "int64", shape: ["N"] },
  cand_genres: { dtype: "int64", shape: ["N", "G"] },
  cand_year: { dtype: "int64", shape: ["N"] },
  cand_content: { dtype: "float32", shape: ["N", "C"] },
  cand_has_content: { dtype: "float32", shape: ["N"] },
  cand_recall: { dtype: "float32", shape: ["N", "R"] },
  cand_item_vec: { dtype: "float32", shape: ["N", "D"] },
  hist_item_vec: { dtype: "float32", shape: ["1", "L", "D"] },
};

/** What one model of the contract takes and gives. */
export interface RankingModelSpec {
  /** Model store name. */
  readonly model: string;
  readonly inputs: readonly RankingInputName[];
  /** Outputs, each float32 [N]. */
  readonly outputs: readonly string[];
  /** manifest.tasks must be exactly these. */
  readonly tasks: readonly string[];
  /**
   * A two-graph model: `item.onnx` maps these item inputs to `item_vec`
   * [N, D] once per item and version (ItemVectorTable), and `model.onnx`
   * takes the vectors as `cand_item_vec`.
   */
  readonly itemTower?: readonly RankingInputName[];
}

/**
 * EM3-style multi-task rank model: click and like probabilities. Its
 * content embedding (the Fusion-Q-Former over an item's text vector and
 * metadata) depends on the item alone: item.onnx runs once per item, and a
 * request feeds the history's and the candidates' embeddings.
 */
export const EM3_SPEC: RankingModelSpec = {
  model: "em3",
  inputs: [
    "user_idx",
    "hist_item_idx",
    "hist_item_vec",
    "cand_item_idx",
    "cand_genres",
    "cand_year",
    "cand_item_vec",
    "cand_recall",
  ],
  outputs: ["click", "like"],
  tasks: ["click", "like"],
  itemTower: ["cand_genres", "cand_year", "cand_content", "cand_has_content"],
};

/**
 * Two-tower prerank model: a click logit. Its item tower runs once per item
 * (item.onnx); per request only the user tower and the scores run.
 */
export const PRERANK_SPEC: RankingModelSpec = {
  model: "prerank",
  inputs: ["user_idx", "hist_item_idx", "cand_item_vec", "cand_recall"],
  outputs: ["score"],
  tasks: ["click"],
  itemTower: ["cand_item_idx", "cand_genres", "cand_year", "cand_content", "cand_has_content"],
};

/**
 * The item vectors one request takes, from one gather (at most one item
 * tower run, for items missing or stale): the candidates' and, when the model
 * takes them, those of the user's history window.
 */
export async function requestVectors(
  spec: RankingModelSpec,
  table: ItemVectorTable | undefined,
  maxHistLen: number,
  user: UserView,
  candidateIds: readonly string[],
): Promise<Pick<FeedOptions, "itemVectors" | "histVectors">> {
  if (!table) return {};
  const window = spec.inputs.includes("hist_item_vec") ? rankingHistory(user.history, maxHistLen) : [];
  if (window.length === 0) return { itemVectors: await table.gather(candidateIds) };
  const all = await table.gather([...window, ...candidateIds], window.length);
  const h = window.length * all.dim;
  return {
    histVectors: { data: all.data.subarray(0, h), dim: all.dim, oov: 0 },
    // a tensor is a whole buffer: the candidates' rows are copied out
    itemVectors: { data: all.data.slice(h), dim: all.dim, oov: all.oov },
  };
}

export interface RankingModel extends FeatureSpace {
  readonly spec: RankingModelSpec;
  readonly version: string;
  readonly modelPath: string;
  /** user id -> user_vocab index. */
  readonly userVocab: ReadonlyMap<string, number>;
  /** Per-item input rows for this version's vocabularies. */
  readonly features: ItemFeatureTable;
  /** A two-graph model's item vectors (spec.itemTower). */
  readonly itemVectors?: ItemVectorTable;
  /** Execution provider the probe batch ran on, and why it is not the requested one. */
  readonly provider: string;
  readonly providerFallbackReason?: string;
}

export class RankingModelError extends Error {
  override readonly name = "RankingModelError";
}

interface SignatureEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly (string | number)[];
}

function positiveInt(manifest: ModelManifest, key: string): number {
  const v = Number(manifest[key]);
  if (!Number.isInteger(v) || v <= 0)
    throw new RankingModelError(`manifest.${key} must be a positive integer`);
  return v;
}

/**
 * Checks the manifest's sizes, tasks and tensor signature against `spec`.
 * Fixed dimensions must match the manifest's (symbolic ones are accepted:
 * the probe batch checks them); the graph must take exactly the spec's
 * inputs, since the services feed nothing else.
 */
export function checkRankingManifest(
  spec: RankingModelSpec,
  manifest: ModelManifest,
  content: Pick<ContentTable, "dim" | "encoderSha">,
): Omit<FeatureSpace, "itemVocab" | "genreVocab"> & { readonly itemVecDim?: number } {
  const L = positiveInt(manifest, "max_hist_len");
  const G = positiveInt(manifest, "max_genres");
  const C = positiveInt(manifest, "content_dim");
  const yearMin = Number(manifest.year_min);
  const yearMax = Number(manifest.year_max);
  if (!Number.isInteger(yearMin) || !Number.isInteger(yearMax) || yearMin > yearMax)
    throw new RankingModelError("manifest.year_min and year_max must be integers, year_min <= year_max");
  if (C !== content.dim)
    throw new RankingModelError(`manifest.content_dim is ${C}, the content vectors have ${content.dim}`);
  // Content vectors of another encoder live in another space: the model would read noise.
  const trainedOn = manifest.content_encoder_sha256;
  if (typeof trainedOn === "string" && trainedOn && content.encoderSha && trainedOn !== content.encoderSha)
    throw new RankingModelError(
      `trained on content vectors of encoder ${trainedOn.slice(0, 16)}, the content table has ${content.encoderSha.slice(0, 16)}`,
    );
  const recallFeatures = manifest.recall_features;
  if (
    !Array.isArray(recallFeatures) ||
    recallFeatures.length === 0 ||
    !recallFeatures.every((f) => f === "recall_score" || (typeof f === "string" && /^channel:.+/.test(f)))
  )
    throw new RankingModelError(
      'manifest.recall_features must be a non-empty list of "recall_score" and "channel:<id>"',
    );
  const tasks = manifest.tasks;
  if (!Array.isArray(tasks) || tasks.join(",") !== spec.tasks.join(","))
    throw new RankingModelError(`manifest.tasks must be ${JSON.stringify(spec.tasks)}`);

  const R = recallFeatures.length;
  let D: number | undefined;
  if (spec.itemTower) {
    D = positiveInt(manifest, "item_vec_dim");
    if (!manifest.item_tower)
      throw new RankingModelError(
        "manifest.item_tower is missing: this version has the single-graph export of an older trainer " +
          `(re-export it: python -m recsys_trainer reexport --model ${spec.model}, or scripts/setup.sh does)`,
      );
  }
  const sizes: Record<Dim, number | undefined> = { "1": 1, L, G, C, N: undefined, R, D };
  const dims = `L=${L} G=${G} C=${C} R=${R}${D ? ` D=${D}` : ""}`;
  checkGraph(
    "signature",
    manifest.signature,
    spec.inputs,
    spec.outputs.map((name) => ({ name, shape: ["N"] })),
    sizes,
    dims,
  );
  if (spec.itemTower)
    checkGraph(
      "item_tower",
      manifest.item_tower,
      spec.itemTower,
      [{ name: "item_vec", shape: ["N", "D"] }],
      sizes,
      dims,
    );
  return {
    maxHistLen: L,
    maxGenres: G,
    contentDim: C,
    yearMin,
    yearMax,
    recallFeatures: recallFeatures as string[],
    ...(D ? { itemVecDim: D } : {}),
  };
}

/**
 * One graph's signature against the contract: exactly `inputs`, each of its
 * dtype and shape, and every output float32 of its shape. Fixed dimensions
 * must match the manifest's sizes; symbolic ones are accepted (the probe
 * batch checks them), and N must be symbolic.
 */
function checkGraph(
  field: string,
  raw: unknown,
  inputs: readonly RankingInputName[],
  outputs: ReadonlyArray<{ readonly name: string; readonly shape: readonly Dim[] }>,
  sizes: Readonly<Record<Dim, number | undefined>>,
  dims: string,
): void {
  const sig = raw as { inputs?: SignatureEntry[]; outputs?: SignatureEntry[] } | undefined;
  if (!Array.isArray(sig?.inputs) || !Array.isArray(sig.outputs))
    throw new RankingModelError(`manifest.${field} is missing`);
  const shapeOk = (actual: readonly (string | number)[], expected: readonly Dim[]) =>
    Array.isArray(actual) &&
    actual.length === expected.length &&
    expected.every((d, i) => {
      const a = actual[i];
      if (typeof a === "string") return true; // symbolic (dynamic) dimension
      const size = sizes[d];
      return size !== undefined && a === size; // N must be dynamic
    });
  for (const name of inputs) {
    const want = RANKING_INPUTS[name];
    const input = sig.inputs.find((i) => i.name === name);
    if (!input) throw new RankingModelError(`${field}: input ${name} missing`);
    if (input.dtype !== want.dtype || !shapeOk(input.shape, want.shape))
      throw new RankingModelError(
        `${field}: input ${name} is ${input.dtype} ${JSON.stringify(input.shape)}, expected ${want.dtype} [${want.shape.join(", ")}] with ${dims}`,
      );
  }
  const extra = sig.inputs.filter((i) => !(inputs as readonly string[]).includes(i.name));
  if (extra.length > 0)
    throw new RankingModelError(`${field}: unexpected inputs ${extra.map((i) => i.name).join(", ")}`);
  for (const { name, shape } of outputs) {
    const output = sig.outputs.find((o) => o.name === name);
    if (output?.dtype !== "float32" || !shapeOk(output.shape, shape))
      throw new RankingModelError(`${field}: output ${name} must be float32 [${shape.join(", ")}]`);
  }
}

/**
 * Reads a vocabulary TSV: `header` line, then "index\tname" rows with
 * index >= minIndex, no index or name twice.
 */
export function readVocab(path: string, header: string, minIndex: number): Map<string, number> {
  const file = path.slice(path.lastIndexOf("/") + 1);
  const lines = readFileSync(path, "utf8").split("\n");
  if (lines[0]?.replace(/\r$/, "") !== header)
    throw new RankingModelError(`${file}: header must be ${JSON.stringify(header)}`);
  const vocab = new Map<string, number>();
  const indices = new Set<number>();
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!.replace(/\r$/, "");
    if (!line) continue;
    const tab = line.indexOf("\t");
    const index = Number(line.slice(0, tab));
    const name = line.slice(tab + 1);
    if (
      tab < 0 ||
      !Number.isInteger(index) ||
      index < minIndex ||
      !name ||
      vocab.has(name) ||
      indices.has(index)
    )
      throw new RankingModelError(`${file} line ${k + 1}: bad entry ${JSON.stringify(line)}`);
    vocab.set(name, index);
    indices.add(index);
  }
  if (vocab.size === 0) throw new RankingModelError(`${file}: empty`);
  return vocab;
}

export interface RankingModelSources {
  readonly catalog: ItemCatalog;
  readonly content: ContentTable;
}

/**
 * Loads and validates a version directory of `spec.model`: manifest and
 * signature, vocabularies, per-item feature rows, then a probe batch (a
 * known and an unknown user, known and unknown items) whose every output
 * must be float32 [N] and finite. Throws RankingModelError otherwise.
 */
export async function loadRankingModel(
  spec: RankingModelSpec,
  dir: string,
  manifest: ModelManifest,
  pool: OnnxPool,
  sources: RankingModelSources,
): Promise<RankingModel> {
  const sizes = checkRankingManifest(spec, manifest, sources.content);
  const itemVocab = readVocab(join(dir, "item_vocab.tsv"), "index\titem_id", 2);
  const userVocab = readVocab(join(dir, "user_vocab.tsv"), "index\tuser_id", 2);
  const genreVocab = readVocab(join(dir, "genre_vocab.tsv"), "index\tgenre", 1);
  const space: FeatureSpace = { ...sizes, itemVocab, genreVocab };
  const features = new ItemFeatureTable(space, sources.catalog, sources.content);
  const modelPath = join(dir, "model.onnx");
  const itemVectors =
    spec.itemTower && sizes.itemVecDim
      ? new ItemVectorTable(features, sizes.itemVecDim, join(dir, "item.onnx"), new Set(spec.itemTower), pool)
      : undefined;

  // Probe: history and candidates of vocabulary items plus one unknown item, for a known and an unknown user.
  const known = [...itemVocab.keys()].slice(0, sizes.maxHistLen + 2);
  const candidates = [...known.slice(0, 4), "probe-unknown-item"].map((itemId, i) => ({
    itemId,
    channels: i % 2 ? ["swing"] : ["kuaiformer", "popular"],
    recallScore: 1 - i / 10,
  }));
  const history = [...known, "probe-unknown-item"].map((itemId, i) => ({
    itemId,
    timestampMs: 1_000_000 + i * 60_000,
    type: EventType.RATING,
    value: 4,
  }));
  let provider = "";
  let providerFallbackReason: string | undefined;
  for (const userId of [[...userVocab.keys()][0]!, "probe-unknown-user"]) {
    const user = { userId, known: true, blockedItemIds: [], earlierSeenItemIds: [], history };
    let outputs: Record<string, TensorData>;
    try {
      const vectors = await requestVectors(
        spec,
        itemVectors,
        space.maxHistLen,
        user,
        candidates.map((c) => c.itemId),
      );
      const { feeds } = buildRankingFeeds(spec, space, userVocab, features, user, candidates, vectors);
      const result = await pool.run(modelPath, feeds);
      outputs = result.outputs;
      provider = result.provider;
      providerFallbackReason = result.fallbackReason;
    } catch (err) {
      throw new RankingModelError(`probe batch failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const name of spec.outputs) {
      const out = outputs[name];
      if (out?.type !== "float32" || out.dims.join(",") !== String(candidates.length))
        throw new RankingModelError(
          `probe output ${name} is ${out?.type} [${out?.dims.join(",")}], expected float32 [${candidates.length}]`,
        );
      if (!new Float32Array(out.data).every(Number.isFinite))
        throw new RankingModelError(`probe output ${name} has non-finite values`);
    }
  }
  if (itemVectors) {
    // every catalogue item's vector before this version serves; items that come later get theirs on first use
    try {
      await itemVectors.fill([...sources.catalog.items.keys()]);
    } catch (err) {
      throw new RankingModelError(`item tower failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return {
    ...space,
    spec,
    version: manifest.version,
    modelPath,
    userVocab,
    features,
    ...(itemVectors ? { itemVectors } : {}),
    provider,
    ...(providerFallbackReason ? { providerFallbackReason } : {}),
  };
}
