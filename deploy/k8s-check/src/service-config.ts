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
/**
 * Every Node service the manifests run; each is one workload of the kind in
 * SERVICE_KINDS with a container of the same name. The services are read from
 * services/<name>/dist/config.js (export `<camelCaseName>ConfigSpec`), so a
 * new service needs its name here.
 */
export const SERVICES = ["gateway", ...STAGES, "stream", "catalog", "online-trainer"] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * The workload kind of each service. Deployments are stateless: they scale
 * with an HPA (rule hpa-pdb). A StatefulSet is a single writer of local
 * state (SINGLE_WRITERS): one pod, no HPA, the state on a volume of its own
 * (rule single-writer).
 */
export const SERVICE_KINDS: Readonly<Record<ServiceName, "Deployment" | "StatefulSet">> = {
  gateway: "Deployment",
  recall: "Deployment",
  prerank: "Deployment",
  rank: "Deployment",
  rerank: "Deployment",
  stream: "Deployment",
  catalog: "StatefulSet",
  "online-trainer": "StatefulSet",
};

/** What a single-writer service keeps, where, and what else it must be able to write. */
export interface SingleWriter {
  /** The key naming its state directory, which must be on a volume from its volumeClaimTemplates. */
  readonly stateKey: string;
  /** The state in words, for messages ("the item store allows exactly 1 writer"). */
  readonly state: string;
  /** Keys naming directories it writes besides its state (on a writable mount, any volume). */
  readonly writes: readonly string[];
}

/**
 * The stateful services (SERVICE_KINDS StatefulSet):
 * - catalog: its item store is an append-only file, and `created` is exact only
 *   because one process sees every upsert;
 * - online-trainer: the one consumer of the `<prefix>online-trainer-samples`
 *   group, whose state.json records what was trained on (a second pod would
 *   take half the partitions with a state file of its own, and two trainers
 *   would fine-tune the same parent version); it publishes model versions, so
 *   it also writes the model store.
 */
export const SINGLE_WRITERS: Readonly<Partial<Record<ServiceName, SingleWriter>>> = {
  catalog: { stateKey: "RECSYS_CATALOG_STORE_DIR", state: "item store", writes: [] },
  "online-trainer": {
    stateKey: "RECSYS_ONLINE_DIR",
    state: "online state (state.json, shards)",
    writes: ["RECSYS_MODEL_STORE"],
  },
};

export function isServiceName(name: string): name is ServiceName {
  return (SERVICES as readonly string[]).includes(name);
}

/** "online-trainer" -> "onlineTrainer" (the prefix of its exported config spec). */
export function camelName(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** "online-trainer" -> "ONLINE_TRAINER" (as in RECSYS_ONLINE_TRAINER_ADDR). */
export function envName(name: string): string {
  return name.toUpperCase().replace(/-/g, "_");
}

/**
 * Variables read by the runtime, not by the services' specs: allowed as direct
 * `env`, never in ConfigMaps.
 */
export const RUNTIME_ENV: Readonly<Record<string, string>> = {
  NODE_OPTIONS: "Node.js flags (heap size under the memory limit)",
  OMP_NUM_THREADS:
    "torch's intra-op threads in the Python trainer the online trainer runs (inherits its environment); without it torch uses every core of the node",
};

/**
 * Keys a service will read once a pending change lands. Allowed only as a
 * direct `env` entry (with a comment at the use), never in a ConfigMap, and
 * reported as a warning once the service's spec declares the key, so that
 * the entry is removed from this list.
 */
export const PLANNED_KEYS: Readonly<Partial<Record<ServiceName, Readonly<Record<string, string>>>>> = {
  // None pending. (RECSYS_RANK_EXECUTION_PROVIDER was one until rank declared it.)
};

export interface ServiceConfig {
  readonly name: ServiceName;
  /** Common keys and the service's own; the service's own definition wins, as in createRuntime. */
  readonly spec: EnvSpec;
  readonly keys: ReadonlySet<string>;
  /** The gateway only: the funnels it sends down (default funnel under each default variant). */
  readonly funnels?: readonly GatewayFunnel[];
}

/** What the gateway asks of the stages per Recommend (services/gateway/src/funnel.ts). */
export interface GatewayFunnel {
  /** "home_feed/control": the funnel id and the experiment variant. */
  readonly name: string;
  readonly recall: { readonly maxCandidates: number; readonly channels: Readonly<Record<string, number>> };
  readonly prerank: { readonly keep: number };
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
    const own = mod[`${camelName(name)}ConfigSpec`];
    if (typeof own !== "object" || own === null)
      throw new Error(`${file} does not export ${camelName(name)}ConfigSpec`);
    const spec: EnvSpec = { ...commonConfigSpec, ...(own as EnvSpec) };
    const funnels = name === "gateway" ? await loadGatewayFunnels(repoRoot) : undefined;
    out.set(name, { name, spec, keys: new Set(describeConfig(spec)), ...(funnels ? { funnels } : {}) });
  }
  return out;
}

/**
 * The gateway's built-in funnel under every variant of its built-in
 * experiment (services/gateway/dist/funnel.js: homeFeed, defaultExperiment,
 * applyOverrides). A RECSYS_FUNNEL_CONFIG file replaces them at run time; the
 * funnel-limits rule says so when one is set.
 */
async function loadGatewayFunnels(repoRoot: string): Promise<GatewayFunnel[]> {
  const file = join(repoRoot, "services", "gateway", "dist", "funnel.js");
  if (!existsSync(file)) throw new Error(`${file} is missing: build the services first (npx tsc -b)`);
  const mod = (await import(pathToFileURL(file).href)) as {
    homeFeed?: GatewayFunnel & { id?: string };
    defaultExperiment?: { variants?: Array<{ name: string; overrides?: unknown }> };
    applyOverrides?: (base: unknown, override: unknown) => unknown;
  };
  const { homeFeed, defaultExperiment, applyOverrides } = mod;
  if (!homeFeed || !applyOverrides) throw new Error(`${file} does not export homeFeed and applyOverrides`);
  const variants = defaultExperiment?.variants ?? [{ name: "default" }];
  return variants.map((v) => {
    const f = applyOverrides(homeFeed, v.overrides) as GatewayFunnel;
    return { name: `${homeFeed.id ?? "funnel"}/${v.name}`, recall: f.recall, prerank: f.prerank };
  });
}

/** Parses `value` with the service's schema for `key`; the zod message when it does not parse. */
export function checkValue(config: ServiceConfig, key: string, value: string): string | undefined {
  const schema = config.spec[key];
  if (!schema) return undefined;
  const result = schema.safeParse(value === "" ? undefined : value);
  return result.success ? undefined : result.error.issues.map((i) => i.message).join("; ");
}
