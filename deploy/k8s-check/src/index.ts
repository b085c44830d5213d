/** Offline checks of the Kubernetes manifests (k8s/): render, validate, enforce the project rules. */
export { checkOverlay, checkRepository, checkResources, countBySeverity, listOverlays } from "./check.js";
export { CrdSchemas, strimziCrds } from "./crds.js";
export { checkDockerfile, checkDockerfiles } from "./dockerfiles.js";
export type { K8sObject } from "./json.js";
export { findRenderer, RenderError, renderKustomization, renderYaml } from "./render.js";
export { RULES } from "./rules/index.js";
export type { Finding, Rule, RuleContext } from "./rules/types.js";
export { loadServiceConfigs, PLANNED_KEYS, RUNTIME_ENV } from "./service-config.js";
