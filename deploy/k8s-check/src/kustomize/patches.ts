/**
 * The two patch kinds of kustomize's `patches:` field, as far as our
 * manifests use them:
 *
 * - Strategic merge patches. Maps merge key by key, `null` deletes a key.
 *   Lists in workloads (Deployment, StatefulSet, DaemonSet, Job, CronJob)
 *   follow the Kubernetes API's patchMergeKey: containers merge by name, env
 *   by name, volumeMounts by mountPath, ports by containerPort...; any other
 *   list is replaced. The merged list holds the patch's elements first, in the
 *   patch's order, then the target's other elements (what kustomize 5 does).
 *   For other kinds (HPA, Strimzi resources...) a list in the patch is refused:
 *   use a JSON 6902 patch, whose meaning does not depend on a schema.
 *   `$patch` and the other directives are refused.
 * - JSON 6902 patches (RFC 6902): add, remove, replace, move, copy, test.
 */
import { clone, isObject, type Json, type JsonObject } from "../json.js";

export class PatchError extends Error {}

/** patchMergeKey of the pod-spec lists (k8s.io/api/core/v1); every other list is atomic. */
const WORKLOAD_MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  volumeDevices: "devicePath",
  ports: "containerPort",
  imagePullSecrets: "name",
  topologySpreadConstraints: "topologyKey",
  hostAliases: "ip",
  resourceClaims: "name",
  schedulingGates: "name",
};

export const WORKLOAD_KINDS: ReadonlySet<string> = new Set([
  "Deployment",
  "StatefulSet",
  "DaemonSet",
  "Job",
  "CronJob",
]);

/** Applies a strategic merge patch to `target` (a workload or another kind); returns a new object. */
export function strategicMerge(target: JsonObject, patch: JsonObject, kind: string): JsonObject {
  const mergeKeys = WORKLOAD_KINDS.has(kind) ? WORKLOAD_MERGE_KEYS : undefined;
  const merged = mergeValue(clone(target), patch, undefined, mergeKeys, kind);
  if (!isObject(merged)) throw new PatchError(`patch for ${kind} did not produce an object`);
  return merged;
}

function mergeValue(
  dest: Json | undefined,
  patch: Json,
  field: string | undefined,
  mergeKeys: Readonly<Record<string, string>> | undefined,
  kind: string,
): Json | undefined {
  if (patch === null) return undefined;
  if (isObject(patch)) {
    const out: JsonObject = isObject(dest) ? dest : {};
    for (const [key, value] of Object.entries(patch)) {
      if (key.startsWith("$")) throw new PatchError(`strategic merge directive "${key}" is not supported`);
      const merged = mergeValue(out[key], value, key, mergeKeys, kind);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    }
    return out;
  }
  if (Array.isArray(patch)) {
    if (!mergeKeys) {
      throw new PatchError(
        `list "${field}" in a strategic merge patch for ${kind}: merge semantics depend on the ` +
          "kind's schema; use a JSON 6902 patch",
      );
    }
    const key = field === undefined ? undefined : mergeKeys[field];
    if (key === undefined) return stripNulls(patch);
    return mergeList(Array.isArray(dest) ? dest : [], patch, field ?? "", key, mergeKeys, kind);
  }
  return patch;
}

function mergeList(
  dest: Json[],
  patch: Json[],
  field: string,
  key: string,
  mergeKeys: Readonly<Record<string, string>>,
  kind: string,
): Json[] {
  const out: Json[] = [];
  const used = new Set<number>();
  for (const element of patch) {
    if (!isObject(element) || element[key] === undefined) {
      throw new PatchError(`element of "${field}" in a strategic merge patch lacks its merge key "${key}"`);
    }
    const index = dest.findIndex((d, i) => !used.has(i) && isObject(d) && d[key] === element[key]);
    if (index < 0) {
      out.push(stripNulls(element));
      continue;
    }
    used.add(index);
    const merged = mergeValue(dest[index], element, undefined, mergeKeys, kind);
    if (merged !== undefined) out.push(merged);
  }
  dest.forEach((d, i) => {
    if (!used.has(i)) out.push(d);
  });
  return out;
}

function stripNulls<T extends Json>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => stripNulls(v)) as T;
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = stripNulls(v);
    return out as T;
  }
  return value;
}

export interface JsonPatchOperation {
  readonly op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  readonly path: string;
  readonly from?: string;
  readonly value?: Json;
}

const OPS = new Set(["add", "remove", "replace", "move", "copy", "test"]);

/** Checks the shape of a parsed JSON 6902 patch. */
export function toJsonPatch(doc: Json, source: string): JsonPatchOperation[] {
  if (!Array.isArray(doc)) throw new PatchError(`${source}: a JSON 6902 patch is a list of operations`);
  return doc.map((op, i) => {
    if (!isObject(op) || typeof op.op !== "string" || !OPS.has(op.op) || typeof op.path !== "string") {
      throw new PatchError(
        `${source}: operation ${i} needs "op" (add, remove, replace, move, copy, test) and "path"`,
      );
    }
    if ((op.op === "move" || op.op === "copy") && typeof op.from !== "string") {
      throw new PatchError(`${source}: operation ${i} (${op.op}) needs "from"`);
    }
    if ((op.op === "add" || op.op === "replace" || op.op === "test") && op.value === undefined) {
      throw new PatchError(`${source}: operation ${i} (${op.op}) needs "value"`);
    }
    return op as unknown as JsonPatchOperation;
  });
}

/** Applies RFC 6902 operations in order; returns a new document. Any failing operation throws. */
export function applyJsonPatch(target: JsonObject, ops: readonly JsonPatchOperation[]): JsonObject {
  let doc: Json = clone(target);
  for (const op of ops) {
    switch (op.op) {
      case "add":
        doc = addAt(doc, parsePointer(op.path), clone(op.value as Json), op);
        break;
      case "remove":
        doc = removeAt(doc, parsePointer(op.path), op);
        break;
      case "replace":
        getAt(doc, parsePointer(op.path), op); // must exist
        doc = addAt(
          removeAt(doc, parsePointer(op.path), op),
          parsePointer(op.path),
          clone(op.value as Json),
          op,
        );
        break;
      case "move": {
        const from = parsePointer(op.from ?? "");
        const value = getAt(doc, from, op);
        doc = addAt(removeAt(doc, from, op), parsePointer(op.path), value, op);
        break;
      }
      case "copy":
        doc = addAt(doc, parsePointer(op.path), clone(getAt(doc, parsePointer(op.from ?? ""), op)), op);
        break;
      case "test":
        if (
          JSON.stringify(sortKeys(getAt(doc, parsePointer(op.path), op))) !==
          JSON.stringify(sortKeys(op.value as Json))
        ) {
          throw new PatchError(`test failed at ${op.path}`);
        }
        break;
    }
  }
  if (!isObject(doc)) throw new PatchError("a JSON 6902 patch replaced the whole object with a non-object");
  return doc;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new PatchError(`JSON pointer "${pointer}" must start with "/"`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function describe(op: JsonPatchOperation): string {
  return `${op.op} ${op.path}`;
}

function getAt(doc: Json, tokens: string[], op: JsonPatchOperation): Json {
  let node: Json = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      const index = arrayIndex(token, node.length - 1, op);
      node = node[index] as Json;
    } else if (isObject(node) && Object.hasOwn(node, token)) {
      node = node[token] as Json;
    } else {
      throw new PatchError(`${describe(op)}: the document has no "${token}" there`);
    }
  }
  return node;
}

function addAt(doc: Json, tokens: string[], value: Json, op: JsonPatchOperation): Json {
  if (tokens.length === 0) return value;
  const parent = getAt(doc, tokens.slice(0, -1), op);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : arrayIndex(last, parent.length, op);
    parent.splice(index, 0, value);
  } else if (isObject(parent)) {
    parent[last] = value;
  } else {
    throw new PatchError(`${describe(op)}: the parent is not an object or a list`);
  }
  return doc;
}

function removeAt(doc: Json, tokens: string[], op: JsonPatchOperation): Json {
  if (tokens.length === 0) throw new PatchError(`${describe(op)}: cannot remove the whole document`);
  const parent = getAt(doc, tokens.slice(0, -1), op);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(last, parent.length - 1, op), 1);
  } else if (isObject(parent) && Object.hasOwn(parent, last)) {
    delete parent[last];
  } else {
    throw new PatchError(`${describe(op)}: the document has no "${last}" there`);
  }
  return doc;
}

function arrayIndex(token: string, max: number, op: JsonPatchOperation): number {
  if (!/^(0|[1-9][0-9]*)$/.test(token) || Number(token) > max) {
    throw new PatchError(`${describe(op)}: "${token}" is not a valid index here`);
  }
  return Number(token);
}

function sortKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys(value[k] as Json);
    return out;
  }
  return value;
}
