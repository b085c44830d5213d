/**
 * configMapGenerator: literals and env files, behaviours create / merge /
 * replace, and the name hash suffix computed exactly as kustomize 5 does, so
 * that the names we render are the names `kubectl apply -k` creates.
 */
import { createHash } from "node:crypto";
import type { JsonObject } from "../json.js";

export class GeneratorError extends Error {}

/** Parses `KEY=value` literals as kustomize does: split at the first "=", one pair of matching quotes removed. */
export function parseLiteral(source: string): [string, string] {
  const eq = source.indexOf("=");
  if (eq <= 0) throw new GeneratorError(`invalid literal "${source}": expected KEY=value`);
  return [source.slice(0, eq), removeQuotes(source.slice(eq + 1))];
}

function removeQuotes(value: string): string {
  const first = value[0];
  if (value.length >= 2 && (first === '"' || first === "'") && value.endsWith(first))
    return value.slice(1, -1);
  return value;
}

const ENV_KEY = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * Parses an env file as kustomize does: leading whitespace dropped, blank
 * lines and `#` lines skipped, split at the first "=", the value kept verbatim
 * (no quote removal, trailing spaces kept). Stricter than kustomize in two
 * places, both of which make a broken ConfigMap: a line without "=" (kustomize
 * would read the value from the renderer's own environment) and a key that is
 * not a valid ConfigMap key.
 */
export function parseEnvFile(text: string, source: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  text
    .replace(/^\uFEFF/, "")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.replace(/\r$/, "").replace(/^\s+/, "");
      if (line === "" || line.startsWith("#")) return;
      const eq = line.indexOf("=");
      if (eq < 0)
        throw new GeneratorError(
          `${source}:${i + 1}: "${line}" has no "=" (values from the environment are not supported)`,
        );
      const key = line.slice(0, eq);
      if (!ENV_KEY.test(key)) throw new GeneratorError(`${source}:${i + 1}: "${key}" is not a valid key`);
      out.push([key, line.slice(eq + 1)]);
    });
  return out;
}

/**
 * kustomize's name suffix for a generated ConfigMap (api/hasher): sha256 of the
 * Go JSON encoding of {data, kind, name}, first 10 hex digits with vowel-like
 * digits mapped to consonants. kustomize looks the name up with a path that
 * never matches, so the name it hashes is always "": only the data counts.
 */
export function configMapHash(
  data: Readonly<Record<string, string>>,
  binaryData?: Readonly<Record<string, string>>,
): string {
  const encoded: Record<string, unknown> = { data, kind: "ConfigMap", name: "" };
  if (binaryData && Object.keys(binaryData).length > 0) encoded.binaryData = binaryData;
  const hex = createHash("sha256").update(goJson(encoded)).digest("hex");
  const map: Record<string, string> = { "0": "g", "1": "h", "3": "k", a: "m", e: "t" };
  return [...hex.slice(0, 10)].map((c) => map[c] ?? c).join("");
}

/** Go's encoding/json: sorted keys, and <, >, & (and U+2028/9) escaped. */
function goJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value).replace(
      /[<>&\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
  }
  if (Array.isArray(value)) return `[${value.map(goJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${goJson(k)}:${goJson(obj[k])}`)
    .join(",")}}`;
}

export function dataOf(configMap: JsonObject): Record<string, string> {
  const out: Record<string, string> = {};
  const data = configMap.data;
  if (typeof data === "object" && data !== null && !Array.isArray(data)) {
    for (const [k, v] of Object.entries(data)) out[k] = String(v);
  }
  return out;
}
