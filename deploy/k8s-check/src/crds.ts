/**
 * Validation of custom resources against the openAPIV3Schema of their
 * CustomResourceDefinition, with a standard JSON-schema validator (ajv). The
 * Strimzi CRDs come from scripts/fetch-strimzi-crds.sh (generated from the
 * published io.strimzi:api jar by Strimzi's own generator, into
 * .cache/strimzi-crds/<version>/), which the check runs when they are missing.
 *
 * The schemas are used as the API server uses them, under kubectl's default
 * strict field validation (kubectl >= 1.27, `--validate=strict`): an unknown
 * field is an error, except under `x-kubernetes-preserve-unknown-fields`.
 * `format` and CEL rules (`x-kubernetes-validations`) are not evaluated.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { parse } from "yaml";
import { asArray, asObject, asString, groupOf, idOf, isObject, type Json, type K8sObject } from "./json.js";

export const STRIMZI_VERSION = "0.48.0";
export const STRIMZI_GROUP = "kafka.strimzi.io";

/** The validators of one set of CRDs, by "group/version/Kind". */
export class CrdSchemas {
  private readonly ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly schemas = new Map<string, Json>();
  /** The groups these CRDs define: a resource of such a group needs one of them. */
  readonly groups = new Set<string>();

  /** Adds every CustomResourceDefinition in the YAML files of `dir`. */
  static fromDirectory(dir: string): CrdSchemas {
    const out = new CrdSchemas();
    for (const file of readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()) {
      out.add(parse(readFileSync(join(dir, file), "utf8")) as Json);
    }
    return out;
  }

  add(crd: Json): void {
    const c = asObject(crd);
    if (c?.kind !== "CustomResourceDefinition") return;
    const spec = asObject(c.spec);
    const group = asString(spec?.group) ?? "";
    const kind = asString(asObject(spec?.names)?.kind) ?? "";
    this.groups.add(group);
    for (const v of asArray(spec?.versions).map(asObject)) {
      const schema = asObject(asObject(v?.schema)?.openAPIV3Schema);
      if (!v || v.served === false || !schema) continue;
      this.schemas.set(`${group}/${asString(v.name)}/${kind}`, strict(structuredClone(schema)));
    }
  }

  has(apiVersion: string, kind: string): boolean {
    return this.schemas.has(`${apiVersion}/${kind}`);
  }

  /** Problems of one resource ("/spec/kafka/listeners/0 must have required property 'tls'"). */
  validate(r: K8sObject): string[] {
    const key = `${r.apiVersion}/${r.kind}`;
    let validator = this.validators.get(key);
    if (!validator) {
      const schema = this.schemas.get(key);
      if (schema === undefined) return [`no CRD schema for ${r.apiVersion} ${r.kind} (not a served version)`];
      validator = this.ajv.compile(schema as object);
      this.validators.set(key, validator);
    }
    if (validator(r)) return [];
    return (validator.errors ?? []).map((e) => {
      const extra = asString((e.params as Record<string, unknown>).additionalProperty);
      const where = e.instancePath || "/";
      return extra === undefined
        ? `${where} ${e.message ?? "is invalid"}`
        : `${where} has unknown field "${extra}"`;
    });
  }
}

/**
 * The API server's pruning as an error: an object schema with properties and
 * no additionalProperties and no x-kubernetes-preserve-unknown-fields accepts
 * no other field. apiVersion, kind and metadata are the API server's business.
 */
function strict(schema: Json): Json {
  const walk = (node: Json | undefined): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    if (!isObject(node)) return;
    if (
      isObject(node.properties) &&
      node.additionalProperties === undefined &&
      node["x-kubernetes-preserve-unknown-fields"] !== true
    ) {
      node.additionalProperties = false;
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === "properties" && isObject(value)) for (const child of Object.values(value)) walk(child);
      else if (key !== "enum" && key !== "default" && key !== "example") walk(value);
    }
  };
  walk(schema);
  const root = asObject(schema);
  const properties = asObject(root?.properties);
  if (properties) {
    for (const field of ["apiVersion", "kind"]) properties[field] ??= { type: "string" };
    properties.metadata = { type: "object" };
  }
  return schema;
}

/** The directory of the Strimzi CRDs for this check, fetched (generated) when missing. */
export function strimziCrdDirectory(repoRoot: string): string {
  const dir =
    process.env.RECSYS_STRIMZI_CRDS_DIR ?? join(repoRoot, ".cache", "strimzi-crds", STRIMZI_VERSION);
  if (existsSync(join(dir, "identity.json"))) return dir;
  const script = join(repoRoot, "scripts", "fetch-strimzi-crds.sh");
  const result = spawnSync("bash", [script], {
    encoding: "utf8",
    env: { ...process.env, RECSYS_STRIMZI_CRDS_DIR: dir },
  });
  if (result.status !== 0 || !existsSync(join(dir, "identity.json"))) {
    throw new Error(
      `the Strimzi CRD schemas are missing and ${script} failed (it needs mvn, java and Maven Central):\n` +
        `${result.stderr ?? ""}${result.error?.message ?? ""}`.trim(),
    );
  }
  return dir;
}

const loaded = new Map<string, CrdSchemas>();

/** The Strimzi CRDs of this repository (fetched once per process). */
export function strimziCrds(repoRoot: string): CrdSchemas {
  let crds = loaded.get(repoRoot);
  if (!crds) {
    crds = CrdSchemas.fromDirectory(strimziCrdDirectory(repoRoot));
    loaded.set(repoRoot, crds);
  }
  return crds;
}

/** Problems of a custom resource of a group the CRDs define; undefined for other resources. */
export function validateCustomResource(crds: CrdSchemas, r: K8sObject): string[] | undefined {
  if (!crds.groups.has(groupOf(r.apiVersion))) return undefined;
  if (!crds.has(r.apiVersion, r.kind)) {
    return [`${idOf(r)}: no CRD serves ${r.apiVersion} ${r.kind}`];
  }
  return crds.validate(r).map((p) => `${idOf(r)}: ${p}`);
}
