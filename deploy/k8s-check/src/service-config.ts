/**
 * What each service reads from its environment: the common keys
 * (@recsys/shared commonConfigSpec) plus the service's own zod spec, imported
 * from services/<name>/dist/config.js. The services are not dependencies of
 * this package; their built specs are loaded at run time from the repository.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { commonConfigSpec, describeConfig, type EnvSpec } from "@recsys/shared";

/** The stages the gateway calls, in funnel order. */
export const STAGES = ["recall", "prerank", "rank", "rerank"] as const;
/** Every Node service the manifests run; each is one Deployment with a container of the same name. */
export const SERVICES = ["gateway", ...STAGES, "stream"] as const;
export type ServiceName = (typeof SERVICES)[number];

export function isServiceName(name: string): name is ServiceName {
  return (SERVICES as readonly string[]).includes(name);
}

/** Variables that Node.js reads, not the services: allowed as direct `env`, never in ConfigMaps. */
export const RUNTIME_ENV: Readonly<Record<string, string>> = {
  NODE_OPTIONS: "Node.js flags (heap size under the memory limit)",
};

/**
 * Keys a service will read once a pending change lands. Allowed only as a
 * direct `env` entry (with a comment at the use), never in a ConfigMap, and
 * reported as a warning once the service's spec declares the key, so that
 * the entry is removed from this list.
 */
export const PLANNED_KEYS: Readonly<Partial<Record<ServiceName, Readonly<Record<string, string>>>>> = {
  rank: {
    RECSYS_RANK_EXECUTION_PROVIDER:
      "ONNX ranking issue: cuda or cpu execution provider (set by the gpu overlay)",
  },
};

export interface ServiceConfig {
  readonly name: ServiceName;
  /** Common keys and the service's own; the service's own definition wins, as in createRuntime. */
  readonly spec: EnvSpec;
  readonly keys: ReadonlySet<string>;
}

export type ServiceConfigs = ReadonlyMap<ServiceName, ServiceConfig>;

/** The repository root, from this file's location (deploy/k8s-check/dist/). */
export function defaultRepoRoot(): string {
  return fileURLToPath(new URL("../../../", import.meta.url));
}

export async function loadServiceConfigs(repoRoot: string): Promise<ServiceConfigs> {
  const out = new Map<ServiceName, ServiceConfig>();
  for (const name of SERVICES) {
    const file = join(repoRoot, "services", name, "dist", "config.js");
    if (!existsSync(file)) throw new Error(`${file} is missing: build the services first (npx tsc -b)`);
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    const own = mod[`${name}ConfigSpec`];
    if (typeof own !== "object" || own === null) throw new Error(`${file} does not export ${name}ConfigSpec`);
    const spec: EnvSpec = { ...commonConfigSpec, ...(own as EnvSpec) };
    out.set(name, { name, spec, keys: new Set(describeConfig(spec)) });
  }
  return out;
}

/** Parses `value` with the service's schema for `key`; the zod message when it does not parse. */
export function checkValue(config: ServiceConfig, key: string, value: string): string | undefined {
  const schema = config.spec[key];
  if (!schema) return undefined;
  const result = schema.safeParse(value === "" ? undefined : value);
  return result.success ? undefined : result.error.issues.map((i) => i.message).join("; ");
}
