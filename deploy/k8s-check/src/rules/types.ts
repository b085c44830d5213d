import type { K8sObject } from "../json.js";
import type { PodTemplate } from "../resources.js";
import type { ServiceConfigs } from "../service-config.js";

export type Severity = "error" | "warning";

export interface Finding {
  /** The rule's id, e.g. "probes". */
  readonly rule: string;
  /** "Kind/namespace/name" of the resource at fault, or a file for source problems. */
  readonly resource: string;
  readonly message: string;
  readonly severity: Severity;
}

export interface RuleContext {
  /** The overlay's name (dev, prod, gpu). */
  readonly overlay: string;
  /** Every rendered resource that passed schema validation. */
  readonly resources: readonly K8sObject[];
  /** The pod templates of the workloads among them. */
  readonly templates: readonly PodTemplate[];
  readonly services: ServiceConfigs;
}

/** One project rule: a stable id (used in output and tests), what it enforces, and the check. */
export interface Rule {
  readonly id: string;
  readonly description: string;
  check(ctx: RuleContext): Finding[];
}

/** Helper for rules: collects findings under the rule's id. */
export function findings(rule: string): {
  readonly list: Finding[];
  error(resource: string, message: string): void;
  warn(resource: string, message: string): void;
} {
  const list: Finding[] = [];
  return {
    list,
    error: (resource, message) => list.push({ rule, resource, message, severity: "error" }),
    warn: (resource, message) => list.push({ rule, resource, message, severity: "warning" }),
  };
}
