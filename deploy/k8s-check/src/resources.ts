/**
 * Typed views of rendered resources for the rules. The rules run only on
 * resources that passed schema validation, so the kubernetes-models
 * interfaces describe them faithfully.
 */
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { asObject, idOf, type JsonObject, type K8sObject, labelsOf, namespaceOf } from "./json.js";

export type LabelSelector = NonNullable<IDeployment["spec"]>["selector"];

/** A pod template inside a workload (Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod). */
export interface PodTemplate {
  readonly owner: K8sObject;
  readonly id: string;
  readonly namespace: string | undefined;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly spec: IPodSpec;
  /** Serves until stopped (Deployment, StatefulSet, DaemonSet), as opposed to a batch Job. */
  readonly longRunning: boolean;
}

const LONG_RUNNING = new Set(["Deployment", "StatefulSet", "DaemonSet", "Pod"]);

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

export function podTemplates(resources: readonly K8sObject[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const r of resources) {
    const spec = podSpecOf(r);
    if (!spec) continue;
    const meta = r.kind === "Pod" ? r.metadata : templateMetadata(r);
    out.push({
      owner: r,
      id: idOf(r),
      namespace: namespaceOf(r),
      labels: labelsOf(meta),
      annotations: stringMap(meta?.annotations),
      spec: spec as unknown as IPodSpec,
      longRunning: LONG_RUNNING.has(r.kind),
    });
  }
  return out;
}

function templateMetadata(r: K8sObject): JsonObject | undefined {
  const spec = asObject(r.spec);
  const template =
    r.kind === "CronJob"
      ? asObject(asObject(asObject(spec?.jobTemplate)?.spec)?.template)
      : asObject(spec?.template);
  return asObject(template?.metadata);
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
  }
  return out;
}

export interface ContainerView {
  readonly container: IContainer;
  readonly init: boolean;
}

export function containersOf(spec: IPodSpec): ContainerView[] {
  return [
    ...(spec.initContainers ?? []).map((container) => ({ container, init: true })),
    ...spec.containers.map((container) => ({ container, init: false })),
  ];
}

/** matchLabels and matchExpressions against a label set. */
export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const value = labels[e.key];
    const values = e.values ?? [];
    if (e.operator === "In" && (value === undefined || !values.includes(value))) return false;
    if (e.operator === "NotIn" && value !== undefined && values.includes(value)) return false;
    if (e.operator === "Exists" && value === undefined) return false;
    if (e.operator === "DoesNotExist" && value !== undefined) return false;
  }
  return true;
}

/** A map selector (Service.spec.selector): every pair must match. */
export function mapSelectorMatches(
  selector: Record<string, string>,
  labels: Record<string, string>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** Parses a resource quantity ("500m", "2Gi", 1) into a number of base units; undefined if malformed. */
export function parseQuantity(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === "number") return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/.exec(q.trim());
  if (!m) return undefined;
  const value = Number(m[1]);
  const suffix = m[2] ?? "";
  const factor = BINARY[suffix] ?? DECIMAL[suffix];
  return Number.isFinite(value) && factor !== undefined ? value * factor : undefined;
}
