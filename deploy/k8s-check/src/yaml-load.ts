/**
 * Multi-document YAML parsing for manifests. Parses as YAML 1.2, like
 * kustomize, and reports plain scalars that YAML 1.1 readers (kubectl's
 * sigs.k8s.io/yaml) would turn into booleans: `on`, `yes`, `n`... A manifest
 * should mean the same thing to every tool, so those must be quoted.
 */
import { isScalar, LineCounter, parseAllDocuments, Scalar, visit } from "yaml";
import type { Json } from "./json.js";

const YAML11_BOOLEANS = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;

export interface ParsedYaml {
  /** Non-empty documents, in order. */
  readonly docs: Json[];
  /** Source-level problems that do not stop parsing (ambiguous scalars). */
  readonly lint: string[];
}

export class YamlError extends Error {}

export function parseYaml(text: string, source: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  if (!Array.isArray(documents)) return { docs: [], lint: [] }; // an empty stream
  const docs: Json[] = [];
  const lint: string[] = [];
  for (const doc of documents) {
    const first = doc.errors[0];
    if (first) {
      const at = first.pos[0] === undefined ? "" : `:${lineCounter.linePos(first.pos[0]).line}`;
      throw new YamlError(`${source}${at}: ${first.message}`);
    }
    visit(doc, {
      Scalar(_key, node) {
        if (
          isScalar(node) &&
          node.type === Scalar.PLAIN &&
          typeof node.value === "string" &&
          YAML11_BOOLEANS.test(node.value)
        ) {
          const line = node.range ? lineCounter.linePos(node.range[0]).line : 0;
          lint.push(
            `${source}:${line}: plain "${String(node.value)}" is a boolean to YAML 1.1 readers (kubectl) ` +
              "but a string to kustomize; quote it",
          );
        }
      },
    });
    const value = doc.toJS({ maxAliasCount: 100 }) as Json | undefined;
    if (value !== null && value !== undefined) docs.push(value);
  }
  return { docs, lint };
}
