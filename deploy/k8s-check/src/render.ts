/**
 * Renders a kustomization with the real kustomize: `kubectl kustomize <dir>`
 * (kubectl ships kustomize; v1.32 has kustomize v5.5), or a standalone
 * `kustomize build <dir>` where kubectl is missing. The multi-document YAML it
 * prints is what `kubectl apply -k` would send, so the checks run on exactly
 * that. Neither tool needs a cluster.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { isK8sObject, type K8sObject } from "./json.js";
import { parseYaml } from "./yaml-load.js";

export class RenderError extends Error {}

export interface Renderer {
  /** "kubectl" or "kustomize", as found on PATH (or named by K8S_CHECK_KUSTOMIZE). */
  readonly tool: string;
  readonly args: (dir: string) => string[];
}

export const NO_RENDERER =
  "neither kubectl nor kustomize is on PATH. The check renders the overlays with the real kustomize: " +
  "install kubectl (v1.27 or later ships kustomize v5; Debian has no kustomize package, so kubectl from " +
  "the Kubernetes apt repository pkgs.k8s.io or its release binary is the expected route), or put a " +
  "standalone kustomize v5 binary on PATH (github.com/kubernetes-sigs/kustomize releases).";

function onPath(name: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * kubectl first, then kustomize. K8S_CHECK_KUSTOMIZE names a binary to use
 * instead (a path; `kubectl...` is called as kubectl, anything else as kustomize).
 */
export function findRenderer(env: NodeJS.ProcessEnv = process.env): Renderer {
  const forced = env.K8S_CHECK_KUSTOMIZE;
  if (forced) {
    const asKubectl = /(^|\/)kubectl[^/]*$/.test(forced);
    return { tool: forced, args: (dir) => (asKubectl ? ["kustomize", dir] : ["build", dir]) };
  }
  const kubectl = onPath("kubectl", env.PATH);
  if (kubectl) return { tool: kubectl, args: (dir) => ["kustomize", dir] };
  const kustomize = onPath("kustomize", env.PATH);
  if (kustomize) return { tool: kustomize, args: (dir) => ["build", dir] };
  throw new RenderError(NO_RENDERER);
}

/** The YAML stream that kustomize prints for `dir`. */
export function renderYaml(dir: string, renderer: Renderer = findRenderer()): string {
  const result = spawnSync(renderer.tool, renderer.args(dir), {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new RenderError(`${renderer.tool}: ${result.error.message}`);
  if (result.status !== 0) {
    const message = result.stderr.trim() || `exit status ${String(result.status)}`;
    throw new RenderError(`${renderer.tool} ${renderer.args(dir).join(" ")}: ${message}`);
  }
  return result.stdout;
}

export interface RenderResult {
  readonly resources: K8sObject[];
  /** Problems of the output that do not stop the check (ambiguous YAML scalars). */
  readonly lint: string[];
}

/** Parses kustomize's output into objects; anything that is not a Kubernetes object is an error. */
export function parseRender(yaml: string, source: string): RenderResult {
  const { docs, lint } = parseYaml(yaml, source);
  const resources: K8sObject[] = [];
  docs.forEach((doc, i) => {
    if (!isK8sObject(doc)) throw new RenderError(`${source}: document ${i + 1} is not a Kubernetes object`);
    resources.push(doc);
  });
  return { resources, lint };
}

/** Renders the kustomization in `dir` with kubectl or kustomize and parses the result. */
export function renderKustomization(dir: string, renderer?: Renderer): RenderResult {
  return parseRender(renderYaml(dir, renderer), dir);
}
