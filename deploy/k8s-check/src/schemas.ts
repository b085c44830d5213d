/**
 * Offline schema validation. Built-in kinds are validated with
 * kubernetes-models (the OpenAPI schemas of Kubernetes, compiled to
 * validators): types, enums, required fields. Those schemas accept unknown
 * fields, so a misspelt optional field passes here; the project rules catch
 * the misspellings that matter (a probe, resources, securityContext that is
 * not where it must be). Custom resources of a group that the given CRDs
 * define (Strimzi's) are validated against those CRDs' schemas (crds.ts).
 */
import { type CrdSchemas, validateCustomResource } from "./crds.js";
import { groupOf, idOf, type K8sObject, versionOf } from "./json.js";

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

const modules = new Map<string, Promise<Record<string, unknown> | undefined>>();

function loadModule(apiVersion: string): Promise<Record<string, unknown> | undefined> {
  let loaded = modules.get(apiVersion);
  if (!loaded) {
    const group = groupOf(apiVersion);
    const specifier =
      group === ""
        ? `kubernetes-models/${apiVersion}`
        : `kubernetes-models/${group}/${versionOf(apiVersion)}`;
    loaded = import(specifier).then(
      (m) => m as Record<string, unknown>,
      () => undefined,
    );
    modules.set(apiVersion, loaded);
  }
  return loaded;
}

/** Schema problems of one resource (empty when valid). */
export async function validateSchema(r: K8sObject, crds?: CrdSchemas): Promise<string[]> {
  const custom = crds ? validateCustomResource(crds, r) : undefined;
  if (custom) return custom;
  const mod = await loadModule(r.apiVersion);
  const Model = mod?.[r.kind] as ModelClass | undefined;
  if (typeof Model !== "function") {
    return [`${idOf(r)}: no schema for ${r.apiVersion} ${r.kind} (unknown kind or API version)`];
  }
  const problems: string[] = [];
  const name = String(r.metadata.name);
  const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (name.length > 253 || !dns1123.test(name))
    problems.push(`${idOf(r)}: metadata.name is not a DNS-1123 name`);
  try {
    new Model(r).validate();
  } catch (err) {
    const details = (err as { errors?: Array<{ instancePath?: string; message?: string }> }).errors;
    if (Array.isArray(details) && details.length > 0) {
      for (const d of details)
        problems.push(`${idOf(r)}: ${d.instancePath || "/"} ${d.message ?? "is invalid"}`);
    } else {
      problems.push(`${idOf(r)}: ${(err as Error).message}`);
    }
  }
  return problems;
}
