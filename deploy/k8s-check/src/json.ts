/** Plain JSON values, as parsed from YAML manifests. */
export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

/** A Kubernetes object as rendered: loosely typed, validated later. */
export interface K8sObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function asObject(value: unknown): JsonObject | undefined {
  return isObject(value) ? value : undefined;
}

export function asArray(value: unknown): Json[] {
  return Array.isArray(value) ? (value as Json[]) : [];
}

export function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

/** Checks that a parsed document looks like a Kubernetes object and narrows it. */
export function isK8sObject(value: unknown): value is K8sObject {
  return (
    isObject(value) &&
    typeof value.apiVersion === "string" &&
    typeof value.kind === "string" &&
    isObject(value.metadata) &&
    typeof value.metadata.name === "string"
  );
}

export function nameOf(obj: K8sObject): string {
  return String(obj.metadata.name);
}

export function namespaceOf(obj: K8sObject): string | undefined {
  return asString(obj.metadata.namespace);
}

/** "Kind/namespace/name" (or "Kind/name" without a namespace), for messages and ids. */
export function idOf(obj: K8sObject): string {
  const ns = namespaceOf(obj);
  return ns ? `${obj.kind}/${ns}/${nameOf(obj)}` : `${obj.kind}/${nameOf(obj)}`;
}

/** "apps" for "apps/v1", "" for the core group ("v1"). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

export function versionOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
}

export function labelsOf(obj: JsonObject | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(asObject(obj?.labels) ?? {})) if (typeof v === "string") out[k] = v;
  return out;
}
