/**
 * The whole check: render every overlay of k8s/overlays with the real
 * kustomize (kubectl kustomize, render.ts), validate each resource against
 * its schema (Kubernetes kinds with kubernetes-models, Strimzi's against its
 * CRDs), run the project rules, and check the Dockerfiles. Every step
 * reports findings; none stops the others.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { type CrdSchemas, strimziCrds } from "./crds.js";
import { checkDockerfiles } from "./dockerfiles.js";
import { idOf, type K8sObject } from "./json.js";
import { checkObservability } from "./observability.js";
import { type Renderer, renderKustomization } from "./render.js";
import { podTemplates } from "./resources.js";
import { type Finding, RULES, type Rule } from "./rules/index.js";
import { validateSchema } from "./schemas.js";
import { defaultRepoRoot, type ServiceConfigs } from "./service-config.js";

export interface OverlayReport {
  readonly overlay: string;
  /** The rendered resources (empty when rendering failed). */
  readonly resources: readonly K8sObject[];
  readonly findings: readonly Finding[];
}

export interface CheckOptions {
  readonly services: ServiceConfigs;
  /** Rules to run; all by default (tests pass one to isolate it). */
  readonly rules?: readonly Rule[];
  /** Schemas of the custom resources; Strimzi's CRDs of this repository by default. */
  readonly crds?: CrdSchemas;
  /** kubectl or kustomize; found on PATH by default. */
  readonly renderer?: Renderer;
}

const error = (rule: string, resource: string, message: string): Finding => ({
  rule,
  resource,
  message,
  severity: "error",
});

/** Renders one overlay directory and checks it. */
export async function checkOverlay(
  dir: string,
  overlay: string,
  options: CheckOptions,
): Promise<OverlayReport> {
  let resources: K8sObject[];
  const findings: Finding[] = [];
  try {
    const rendered = renderKustomization(dir, options.renderer);
    resources = rendered.resources;
    for (const lint of rendered.lint) findings.push(error("yaml", lint.split(":")[0] ?? dir, lint));
  } catch (err) {
    return { overlay, resources: [], findings: [error("render", dir, (err as Error).message)] };
  }
  return {
    overlay,
    resources,
    findings: [...findings, ...(await checkResources(resources, overlay, options))],
  };
}

/** Schema validation and the project rules over rendered resources (used directly by the tests). */
export async function checkResources(
  resources: readonly K8sObject[],
  overlay: string,
  options: CheckOptions,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const valid: K8sObject[] = [];
  const crds = options.crds ?? strimziCrds(defaultRepoRoot());
  for (const r of resources) {
    const problems = await validateSchema(r, crds);
    for (const p of problems) findings.push(error("schema", idOf(r), p.replace(`${idOf(r)}: `, "")));
    if (problems.length === 0) valid.push(r);
  }
  const ctx = { overlay, resources: valid, templates: podTemplates(valid), services: options.services };
  for (const rule of options.rules ?? RULES) findings.push(...rule.check(ctx));
  return findings;
}

export interface RepositoryReport {
  readonly overlays: readonly OverlayReport[];
  readonly dockerfiles: readonly Finding[];
  /** Dashboard, Prometheus rules and scrape config against the code and the manifests. */
  readonly observability: readonly Finding[];
}

/** The overlays under <k8sDir>/overlays, by directory name. */
export function listOverlays(k8sDir: string): string[] {
  const dir = join(k8sDir, "overlays");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .sort();
}

export async function checkRepository(
  repoRoot: string,
  k8sDir: string,
  options: CheckOptions & { readonly overlays?: readonly string[] },
): Promise<RepositoryReport> {
  const names = options.overlays ?? listOverlays(k8sDir);
  const withCrds = { ...options, crds: options.crds ?? strimziCrds(repoRoot) };
  const overlays: OverlayReport[] = [];
  for (const name of names) overlays.push(await checkOverlay(join(k8sDir, "overlays", name), name, withCrds));
  const images = overlays.flatMap((o) =>
    podTemplates(o.resources).flatMap((t) =>
      [...(t.spec.initContainers ?? []), ...t.spec.containers].map((c) => c.image ?? ""),
    ),
  );
  return {
    overlays,
    dockerfiles: checkDockerfiles(repoRoot, images),
    observability: checkObservability(repoRoot, overlays),
  };
}

export function countBySeverity(findings: readonly Finding[]): { errors: number; warnings: number } {
  return {
    errors: findings.filter((f) => f.severity === "error").length,
    warnings: findings.filter((f) => f.severity === "warning").length,
  };
}
