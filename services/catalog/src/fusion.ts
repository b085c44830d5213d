/**
 * The content vector an item carries downstream (ItemUpdate.content_vector),
 * made from its per-modality vectors by a configured rule:
 *
 * - `text`: the text vector alone (all-MiniLM-L6-v2, 384-d, unit length): the
 *   same space as the dataset's `content` model, so recall's content index
 *   and its `fresh` and `query` channels compare like with like. An item with
 *   no text has no content vector under this rule.
 * - `weighted`: every modality the item has is brought to unit length,
 *   projected into the text dimension by a fixed random projection (the text
 *   vector is used as it is), weighted, summed and normalised:
 *
 *       fused = unit( Σ_m w_m · unit(P_m · unit(x_m)) )
 *
 *   P_m is a Gaussian random matrix (textDim × dim_m, entries N(0, 1/textDim))
 *   that depends only on the modality name and the two dimensions, so every
 *   process and every restart gets the same one (see `projectionMatrix` for
 *   the exact generator, reproducible in any language). A random projection
 *   keeps the geometry *within* a modality (Johnson-Lindenstrauss: distances
 *   are roughly preserved), but it does not align image space with text
 *   space: fusion only makes items with similar images or videos closer on
 *   top of their text similarity. It is a placeholder the ranking issue
 *   replaces with a learned fusion.
 */
import { createHash } from "node:crypto";
import { seededRandom } from "@recsys/shared";
import { TEXT_MODALITY } from "./validate.js";

export type FusionRule = "text" | "weighted";

export interface FusionConfig {
  readonly rule: FusionRule;
  /** modality -> weight (weighted rule); a modality left out weighs 1. */
  readonly weights: Readonly<Record<string, number>>;
}

/** uint32 seed of a modality's projection: the first 4 bytes (big-endian) of SHA-256("recsys-fusion-v1:<modality>:<fromDim>x<toDim>"). */
export function projectionSeed(modality: string, fromDim: number, toDim: number): number {
  return createHash("sha256")
    .update(`recsys-fusion-v1:${modality}:${fromDim}x${toDim}`)
    .digest()
    .readUInt32BE(0);
}

const projections = new Map<string, Float32Array>();

/**
 * P_m, row-major toDim × fromDim: entries drawn in row-major order from
 * seededRandom(projectionSeed) (mulberry32) through Box-Muller (u1 = 1 − next(), u2 = next(),
 * z = sqrt(−2 ln u1) · cos(2π u2); one normal per pair of draws), times
 * 1/sqrt(toDim). Cached per (modality, dims).
 */
export function projectionMatrix(modality: string, fromDim: number, toDim: number): Float32Array {
  const key = `${modality}:${fromDim}x${toDim}`;
  let p = projections.get(key);
  if (!p) {
    const next = seededRandom(projectionSeed(modality, fromDim, toDim));
    const scale = 1 / Math.sqrt(toDim);
    p = new Float32Array(toDim * fromDim);
    for (let i = 0; i < p.length; i++) {
      const u1 = 1 - next();
      const u2 = next();
      p[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2) * scale;
    }
    projections.set(key, p);
  }
  return p;
}

/** Scales `v` to unit length in place; false (and unchanged) when it is zero or not finite. */
export function normalizeInPlace(v: Float32Array): boolean {
  let sq = 0;
  for (const x of v) sq += x * x;
  const norm = Math.sqrt(sq);
  if (!(norm > 0) || !Number.isFinite(norm)) return false;
  for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return true;
}

export function project(values: Float32Array, modality: string, toDim: number): Float32Array {
  const fromDim = values.length;
  const p = projectionMatrix(modality, fromDim, toDim);
  const x = Float32Array.from(values);
  normalizeInPlace(x);
  const y = new Float32Array(toDim);
  for (let r = 0; r < toDim; r++) {
    let s = 0;
    const row = r * fromDim;
    for (let c = 0; c < fromDim; c++) s += p[row + c]! * x[c]!;
    y[r] = s;
  }
  normalizeInPlace(y);
  return y;
}

/**
 * The fused content vector (unit length, `textDim` wide), or undefined when
 * the rule leaves the item without one (rule `text` and no text; all weights 0).
 */
export function fuse(
  config: FusionConfig,
  textVector: Float32Array | undefined,
  modalities: ReadonlyArray<{ readonly modality: string; readonly values: Float32Array }>,
  textDim: number,
): Float32Array | undefined {
  if (config.rule === "text") return textVector ? Float32Array.from(textVector) : undefined;
  const fused = new Float32Array(textDim);
  let any = false;
  const add = (v: Float32Array, weight: number) => {
    if (weight === 0) return;
    for (let d = 0; d < textDim; d++) fused[d]! += weight * v[d]!;
    any = true;
  };
  if (textVector) add(textVector, config.weights[TEXT_MODALITY] ?? 1);
  for (const m of modalities) add(project(m.values, m.modality, textDim), config.weights[m.modality] ?? 1);
  return any && normalizeInPlace(fused) ? fused : undefined;
}
