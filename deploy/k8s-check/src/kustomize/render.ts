/**
 * A kustomize renderer for the subset of kustomize that k8s/ uses, so the CI
 * check needs no kubectl. It does what kustomize 5 does, in the same order:
 *
 *   1. resources: files (multi-document) and directories (kustomizations,
 *      built first, with their own transformers);
 *   2. configMapGenerator: literals and env files; create / merge / replace;
 *   3. patches (in order), then namespace, then labels, then images;
 *   4. at the top level only: hash suffixes on generated ConfigMaps, and the
 *      references to them in pod specs renamed.
 *
 * Any other kustomization field (commonLabels, namePrefix, replicas,
 * components, helmCharts...) is refused with an error naming it, rather than
 * ignored: extend this file (and its tests) before using a new feature.
 * deploy/k8s-check/src/kustomize/render.spec.ts compares this renderer with
 * `kubectl kustomize` when kubectl is installed.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import {
  asArray,
  asObject,
  asString,
  groupOf,
  idOf,
  isK8sObject,
  isObject,
  type Json,
  type JsonObject,
  type K8sObject,
  namespaceOf,
  versionOf,
} from "../json.js";
import { parseYaml } from "../yaml-load.js";
import { configMapHash, dataOf, GeneratorError, parseEnvFile, parseLiteral } from "./generators.js";
import { applyImages, type ImageOverride } from "./images.js";
import { applyJsonPatch, strategicMerge, toJsonPatch } from "./patches.js";

export class KustomizeError extends Error {}

export interface RenderResult {
  readonly resources: K8sObject[];
  /** Source problems that do not stop rendering (ambiguous YAML scalars). */
  readonly lint: string[];
}

const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const SUPPORTED_FIELDS = new Set([
  "apiVersion",
  "kind",
  "resources",
  "namespace",
  "labels",
  "images",
  "patches",
  "configMapGenerator",
]);
/** Kinds without a namespace that we might render. */
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
  "RuntimeClass",
  "IngressClass",
  "MutatingWebhookConfiguration",
  "ValidatingWebhookConfiguration",
]);
/** Marks generated ConfigMaps that get a hash suffix at the end of the build. */
const NEEDS_HASH = "internal.k8s-check/needs-hash";

/** Renders the kustomization in `dir`, like `kubectl kustomize dir`. */
export function renderKustomization(dir: string): RenderResult {
  const lint: string[] = [];
  const resources = build(resolve(dir), [], lint);
  return { resources: finalize(resources), lint };
}

function build(dir: string, stack: string[], lint: string[]): K8sObject[] {
  if (stack.includes(dir)) throw new KustomizeError(`cycle: ${[...stack, dir].join(" -> ")}`);
  const file = KUSTOMIZATION_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new KustomizeError(`${dir}: no kustomization.yaml`);
  const parsed = parseYaml(readFileSync(file, "utf8"), file);
  lint.push(...parsed.lint);
  const k = asObject(parsed.docs[0]);
  if (!k || parsed.docs.length !== 1) throw new KustomizeError(`${file}: expected one YAML mapping`);
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) {
      throw new KustomizeError(`${file}: "${field}" is not supported by deploy/k8s-check's renderer`);
    }
  }
  if (k.kind !== undefined && k.kind !== "Kustomization")
    throw new KustomizeError(`${file}: kind must be Kustomization`);

  const ctx = { dir, file, lint };
  let resources: K8sObject[] = [];
  for (const entry of asArray(k.resources)) {
    const ref = asString(entry);
    if (!ref) throw new KustomizeError(`${file}: resources entries are paths`);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref) || ref.includes("?ref=")) {
      throw new KustomizeError(`${file}: remote resource "${ref}" is not supported`);
    }
    const path = resolve(dir, ref);
    if (!existsSync(path)) throw new KustomizeError(`${file}: resource "${ref}" does not exist`);
    const added = statSync(path).isDirectory() ? build(path, [...stack, dir], lint) : loadResources(ctx, ref);
    for (const r of added) addUnique(resources, r, file);
  }
  resources = generateConfigMaps(ctx, asArray(k.configMapGenerator), resources);
  for (const [i, patch] of asArray(k.patches).entries()) resources = applyPatch(ctx, patch, i, resources);
  const namespace = asString(k.namespace);
  if (namespace !== undefined) {
    for (const r of resources) if (!CLUSTER_SCOPED.has(r.kind)) r.metadata.namespace = namespace;
  }
  for (const entry of asArray(k.labels)) applyLabels(ctx, entry, resources);
  const images = asArray(k.images).map((e) => toImageOverride(ctx, e));
  if (images.length > 0) for (const r of resources) applyImages(r, images);
  return resources;
}

interface BuildContext {
  readonly dir: string;
  readonly file: string;
  readonly lint: string[];
}

/** kustomize's load restrictor: files (not bases) must sit inside the kustomization's directory. */
function readLocalFile(ctx: BuildContext, ref: string): string {
  const path = resolve(ctx.dir, ref);
  const rel = relative(ctx.dir, path);
  if (rel.startsWith(`..${sep}`) || rel === "..") {
    throw new KustomizeError(`${ctx.file}: "${ref}" is outside the kustomization's directory`);
  }
  if (!existsSync(path)) throw new KustomizeError(`${ctx.file}: "${ref}" does not exist`);
  return readFileSync(path, "utf8");
}

function loadResources(ctx: BuildContext, ref: string): K8sObject[] {
  const source = join(ctx.dir, ref);
  const parsed = parseYaml(readLocalFile(ctx, ref), source);
  ctx.lint.push(...parsed.lint);
  return parsed.docs.map((doc, i) => {
    if (!isK8sObject(doc))
      throw new KustomizeError(`${source}: document ${i + 1} lacks apiVersion, kind or metadata.name`);
    return doc;
  });
}

function addUnique(into: K8sObject[], r: K8sObject, file: string): void {
  if (into.some((o) => sameId(o, r))) throw new KustomizeError(`${file}: ${idOf(r)} is defined twice`);
  into.push(r);
}

function sameId(a: K8sObject, b: K8sObject): boolean {
  return (
    a.kind === b.kind &&
    groupOf(a.apiVersion) === groupOf(b.apiVersion) &&
    a.metadata.name === b.metadata.name &&
    namespaceOf(a) === namespaceOf(b)
  );
}

function generateConfigMaps(ctx: BuildContext, generators: Json[], resources: K8sObject[]): K8sObject[] {
  const out = [...resources];
  for (const g of generators) {
    const gen = asObject(g);
    const name = asString(gen?.name);
    if (!gen || !name) throw new KustomizeError(`${ctx.file}: configMapGenerator entries need a name`);
    for (const field of Object.keys(gen)) {
      if (!["name", "behavior", "literals", "envs", "options"].includes(field)) {
        throw new KustomizeError(`${ctx.file}: configMapGenerator "${field}" is not supported`);
      }
    }
    const options = asObject(gen.options) ?? {};
    for (const field of Object.keys(options)) {
      if (field !== "disableNameSuffixHash")
        throw new KustomizeError(`${ctx.file}: generator option "${field}" is not supported`);
    }
    const data: Record<string, string> = {};
    try {
      for (const env of asArray(gen.envs)) {
        const ref = String(env);
        for (const [key, value] of parseEnvFile(readLocalFile(ctx, ref), join(ctx.dir, ref)))
          data[key] = value;
      }
      for (const literal of asArray(gen.literals)) {
        const [key, value] = parseLiteral(String(literal));
        data[key] = value;
      }
    } catch (err) {
      if (err instanceof GeneratorError) throw new KustomizeError(`${ctx.file}: ${err.message}`);
      throw err;
    }
    const behavior = asString(gen.behavior) ?? "create";
    const hashed = options.disableNameSuffixHash !== true;
    if (behavior === "create") {
      const cm: K8sObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data };
      if (hashed) cm.metadata.annotations = { [NEEDS_HASH]: "true" };
      addUnique(out, cm, ctx.file);
      continue;
    }
    if (behavior !== "merge" && behavior !== "replace") {
      throw new KustomizeError(
        `${ctx.file}: configMapGenerator behavior "${behavior}" (create, merge or replace)`,
      );
    }
    const existing = out.filter((r) => r.kind === "ConfigMap" && r.metadata.name === name);
    const target = existing[0];
    if (!target || existing.length > 1) {
      throw new KustomizeError(
        `${ctx.file}: ${behavior} needs exactly one ConfigMap "${name}" from the resources`,
      );
    }
    target.data = behavior === "merge" ? { ...dataOf(target), ...data } : data;
  }
  return out;
}

interface Selector {
  readonly group?: string;
  readonly version?: string;
  readonly kind?: string;
  readonly name?: string;
  readonly namespace?: string;
}

/** kustomize treats each selector field as an anchored regular expression. */
function selects(selector: Selector, r: K8sObject): boolean {
  const test = (pattern: string | undefined, value: string) =>
    pattern === undefined || new RegExp(`^(?:${pattern})$`).test(value);
  return (
    test(selector.group, groupOf(r.apiVersion)) &&
    test(selector.version, versionOf(r.apiVersion)) &&
    test(selector.kind, r.kind) &&
    test(selector.name, String(r.metadata.name)) &&
    test(selector.namespace, namespaceOf(r) ?? "")
  );
}

function toSelector(ctx: BuildContext, value: Json | undefined): Selector | undefined {
  if (value === undefined) return undefined;
  const t = asObject(value);
  if (!t) throw new KustomizeError(`${ctx.file}: a patch target is a mapping`);
  for (const field of Object.keys(t)) {
    if (!["group", "version", "kind", "name", "namespace"].includes(field)) {
      throw new KustomizeError(`${ctx.file}: patch target field "${field}" is not supported`);
    }
  }
  return {
    group: asString(t.group),
    version: asString(t.version),
    kind: asString(t.kind),
    name: asString(t.name),
    namespace: asString(t.namespace),
  };
}

function applyPatch(ctx: BuildContext, entry: Json, index: number, resources: K8sObject[]): K8sObject[] {
  const p = asObject(entry);
  if (!p) throw new KustomizeError(`${ctx.file}: patches[${index}] is a mapping`);
  for (const field of Object.keys(p)) {
    if (!["path", "patch", "target"].includes(field)) {
      throw new KustomizeError(`${ctx.file}: patches[${index}].${field} is not supported`);
    }
  }
  const path = asString(p.path);
  const inline = asString(p.patch);
  if ((path === undefined) === (inline === undefined)) {
    throw new KustomizeError(`${ctx.file}: patches[${index}] needs exactly one of path or patch`);
  }
  const source = path === undefined ? `${ctx.file} patches[${index}]` : join(ctx.dir, path);
  const parsed = parseYaml(path === undefined ? (inline as string) : readLocalFile(ctx, path), source);
  ctx.lint.push(...parsed.lint);
  const target = toSelector(ctx, p.target);
  const first = parsed.docs[0];

  if (parsed.docs.length === 1 && Array.isArray(first)) {
    if (!target) throw new KustomizeError(`${source}: a JSON 6902 patch needs a target`);
    const ops = toJsonPatch(first, source);
    return transformMatching(resources, target, source, (r) => applyJsonPatch(r, ops));
  }

  let out = resources;
  for (const doc of parsed.docs) {
    if (!isObject(doc)) throw new KustomizeError(`${source}: a strategic merge patch is a mapping`);
    if (target) {
      out = transformMatching(out, target, source, (r) => strategicMerge(r, doc, r.kind));
      continue;
    }
    if (!isK8sObject(doc))
      throw new KustomizeError(`${source}: a patch without target needs apiVersion, kind and metadata.name`);
    const byId: Selector = {
      group: escapeRegExp(groupOf(doc.apiVersion)),
      version: escapeRegExp(versionOf(doc.apiVersion)),
      kind: escapeRegExp(doc.kind),
      name: escapeRegExp(String(doc.metadata.name)),
      namespace: namespaceOf(doc) === undefined ? undefined : escapeRegExp(namespaceOf(doc) as string),
    };
    out = transformMatching(out, byId, source, (r) => strategicMerge(r, doc, r.kind), true);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Applies `fn` to each resource the selector matches. A selector that matches
 * nothing is an error here (kustomize ignores it for targets): it is nearly
 * always a typo that would leave an overlay silently unpatched.
 */
function transformMatching(
  resources: K8sObject[],
  selector: Selector,
  source: string,
  fn: (r: K8sObject) => JsonObject,
  exactlyOne = false,
): K8sObject[] {
  let matched = 0;
  const out = resources.map((r) => {
    if (!selects(selector, r)) return r;
    matched++;
    const patched = fn(r);
    if (!isK8sObject(patched))
      throw new KustomizeError(`${source}: patching ${idOf(r)} removed its identity`);
    return patched;
  });
  if (matched === 0) throw new KustomizeError(`${source}: the patch matches no resource`);
  if (exactlyOne && matched > 1)
    throw new KustomizeError(`${source}: the patch matches ${matched} resources`);
  return out;
}

function applyLabels(ctx: BuildContext, entry: Json, resources: K8sObject[]): void {
  const l = asObject(entry);
  const pairs = asObject(l?.pairs);
  if (!l || !pairs) throw new KustomizeError(`${ctx.file}: labels entries need pairs`);
  for (const field of Object.keys(l)) {
    const off = (field === "includeSelectors" || field === "includeTemplates") && l[field] === false;
    if (field !== "pairs" && !off) {
      throw new KustomizeError(`${ctx.file}: labels.${field} is not supported (metadata labels only)`);
    }
  }
  for (const r of resources) {
    const labels = asObject(r.metadata.labels) ?? {};
    for (const [k, v] of Object.entries(pairs)) labels[k] = String(v);
    r.metadata.labels = labels;
  }
}

function toImageOverride(ctx: BuildContext, entry: Json): ImageOverride {
  const i = asObject(entry);
  const name = asString(i?.name);
  if (!i || !name) throw new KustomizeError(`${ctx.file}: images entries need a name`);
  for (const field of Object.keys(i)) {
    if (!["name", "newName", "newTag", "digest"].includes(field)) {
      throw new KustomizeError(`${ctx.file}: images.${field} is not supported`);
    }
  }
  const str = (v: Json | undefined) => (v === undefined ? undefined : String(v));
  return { name, newName: str(i.newName), newTag: str(i.newTag), digest: str(i.digest) };
}

/** The top-level steps: hash suffixes, then the references to the renamed ConfigMaps. */
function finalize(resources: K8sObject[]): K8sObject[] {
  const renamed = new Map<string, string>(); // "namespace/name" -> new name
  for (const r of resources) {
    const annotations = asObject(r.metadata.annotations);
    if (r.kind !== "ConfigMap" || annotations?.[NEEDS_HASH] === undefined) continue;
    delete annotations[NEEDS_HASH];
    if (Object.keys(annotations).length === 0) delete r.metadata.annotations;
    const name = String(r.metadata.name);
    const hashed = `${name}-${configMapHash(dataOf(r))}`;
    renamed.set(`${namespaceOf(r) ?? ""}/${name}`, hashed);
    r.metadata.name = hashed;
  }
  if (renamed.size === 0) return resources;
  for (const r of resources) {
    const spec = podSpecOf(r);
    if (!spec) continue;
    const rename = (ref: JsonObject | undefined) => {
      const name = asString(ref?.name);
      const to = name === undefined ? undefined : renamed.get(`${namespaceOf(r) ?? ""}/${name}`);
      if (ref && to) ref.name = to;
    };
    for (const c of [...asArray(spec.containers), ...asArray(spec.initContainers)]) {
      const container = asObject(c);
      for (const e of asArray(container?.envFrom)) rename(asObject(asObject(e)?.configMapRef));
      for (const e of asArray(container?.env))
        rename(asObject(asObject(asObject(e)?.valueFrom)?.configMapKeyRef));
    }
    for (const v of asArray(spec.volumes)) {
      const volume = asObject(v);
      rename(asObject(volume?.configMap));
      for (const s of asArray(asObject(volume?.projected)?.sources)) rename(asObject(asObject(s)?.configMap));
    }
  }
  return resources;
}

/** The pod spec inside a workload, or undefined for other kinds. */
export function podSpecOf(r: K8sObject): JsonObject | undefined {
  const spec = asObject(r.spec);
  switch (r.kind) {
    case "Pod":
      return spec;
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return asObject(asObject(spec?.template)?.spec);
    case "CronJob":
      return asObject(asObject(asObject(asObject(spec?.jobTemplate)?.spec)?.template)?.spec);
    default:
      return undefined;
  }
}

/** Directory of the kustomization file that `path` (file or directory) names. */
export function kustomizationDir(path: string): string {
  return statSync(path).isDirectory() ? path : dirname(path);
}

const ORDER_FIRST = [
  "Namespace",
  "ResourceQuota",
  "StorageClass",
  "CustomResourceDefinition",
  "ServiceAccount",
  "PodSecurityPolicy",
  "Role",
  "ClusterRole",
  "RoleBinding",
  "ClusterRoleBinding",
  "ConfigMap",
  "Secret",
  "Endpoints",
  "Service",
  "LimitRange",
  "PriorityClass",
  "PersistentVolume",
  "PersistentVolumeClaim",
  "Deployment",
  "StatefulSet",
  "CronJob",
  "PodDisruptionBudget",
];
const ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/**
 * kustomize's "legacy" output order (namespaces and config first, webhooks
 * last, the rest by kind and name), so that `kubectl apply -f -` of a printed
 * render creates the Namespace before what lives in it.
 */
export function legacyOrder(resources: readonly K8sObject[]): K8sObject[] {
  const rank = (kind: string) => {
    const first = ORDER_FIRST.indexOf(kind);
    if (first >= 0) return first;
    const last = ORDER_LAST.indexOf(kind);
    return last >= 0 ? ORDER_FIRST.length + 1 + last : ORDER_FIRST.length;
  };
  const key = (r: K8sObject) =>
    `${r.apiVersion}/${r.kind}/${namespaceOf(r) ?? ""}/${String(r.metadata.name)}`;
  return [...resources].sort(
    (a, b) => rank(a.kind) - rank(b.kind) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0),
  );
}
