/**
 * Rules that tie the manifests to the code: the keys and values each funnel
 * service reads (its zod spec), the ports it listens on, the stage targets
 * the gateway dials, shutdown timing and the Node heap.
 */
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IService } from "kubernetes-models/v1/Service";
import { asObject, idOf, type K8sObject, namespaceOf } from "../json.js";
import { checkOtel, isOtelKey } from "../otel.js";
import { mapSelectorMatches, type PodTemplate, parseQuantity } from "../resources.js";
import {
  checkValue,
  envName,
  isServiceName,
  PLANNED_KEYS,
  RUNTIME_ENV,
  type ServiceConfig,
  STAGES,
} from "../service-config.js";
import { findings, type Rule, type RuleContext } from "./types.js";

function configMap(ctx: RuleContext, name: string, namespace: string | undefined): K8sObject | undefined {
  return ctx.resources.find(
    (r) => r.kind === "ConfigMap" && r.metadata.name === name && namespaceOf(r) === namespace,
  );
}

function dataOf(cm: K8sObject | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(asObject(cm?.data) ?? {})) out[k] = String(v);
  return out;
}

interface EnvValue {
  readonly value: string | undefined;
  /** "ConfigMap <name>" or "env". */
  readonly from: string;
}

/** The container's environment as the kubelet builds it: envFrom in order, then env on top. */
export function effectiveEnv(ctx: RuleContext, t: PodTemplate, c: IContainer): Map<string, EnvValue> {
  const env = new Map<string, EnvValue>();
  for (const source of c.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (!name) continue;
    for (const [k, v] of Object.entries(dataOf(configMap(ctx, name, t.namespace)))) {
      env.set(`${source.prefix ?? ""}${k}`, { value: v, from: `ConfigMap ${name}` });
    }
  }
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.configMapKeyRef;
    const value = ref ? dataOf(configMap(ctx, ref.name ?? "", t.namespace))[ref.key] : e.value;
    env.set(e.name, { value: e.valueFrom && !ref ? undefined : (value ?? ""), from: "env" });
  }
  return env;
}

/**
 * Service containers: the container named after its Deployment or StatefulSet,
 * when that is one of our services (whether it has the right kind is the
 * single-writer rule's business).
 */
export function serviceContainers(
  ctx: RuleContext,
): Array<{ t: PodTemplate; c: IContainer; service: ServiceConfig }> {
  const out: Array<{ t: PodTemplate; c: IContainer; service: ServiceConfig }> = [];
  for (const t of ctx.templates) {
    if (t.owner.kind !== "Deployment" && t.owner.kind !== "StatefulSet") continue;
    for (const c of t.spec.containers) {
      const service = isServiceName(c.name) ? ctx.services.get(c.name) : undefined;
      if (service && c.name === t.owner.metadata.name) out.push({ t, c, service });
    }
  }
  return out;
}

export const configKeysRule: Rule = {
  id: "config-keys",
  description:
    "ConfigMaps used by a service hold only keys its spec declares (or standard OpenTelemetry SDK OTEL_* variables), with values the spec accepts; direct env adds only runtime, OTEL_* or documented planned keys; every referenced ConfigMap and key exists",
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      for (const { container: c } of [
        ...(t.spec.initContainers ?? []).map((container) => ({ container })),
        ...t.spec.containers.map((container) => ({ container })),
      ]) {
        for (const source of c.envFrom ?? []) {
          const name = source.configMapRef?.name;
          if (name && !source.configMapRef?.optional && !configMap(ctx, name, t.namespace)) {
            f.error(t.id, `container "${c.name}" uses ConfigMap "${name}", which is not rendered`);
          }
        }
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.configMapKeyRef;
          if (!ref || ref.optional) continue;
          const cm = configMap(ctx, ref.name ?? "", t.namespace);
          if (!cm)
            f.error(
              t.id,
              `container "${c.name}" env ${e.name} reads ConfigMap "${ref.name}", which is not rendered`,
            );
          else if (!(ref.key in dataOf(cm)))
            f.error(
              t.id,
              `container "${c.name}" env ${e.name} reads key "${ref.key}", missing from ${idOf(cm)}`,
            );
        }
      }
    }
    for (const { t, c, service } of serviceContainers(ctx)) {
      const where = `container "${c.name}"`;
      const otelEnv = new Map(
        [...effectiveEnv(ctx, t, c)].flatMap(([k, v]) => (v.value === undefined ? [] : [[k, v.value]])),
      );
      for (const source of c.envFrom ?? []) {
        const name = source.configMapRef?.name;
        if (!name) continue;
        for (const [key, value] of Object.entries(dataOf(configMap(ctx, name, t.namespace)))) {
          const full = `${source.prefix ?? ""}${key}`;
          if (!service.keys.has(full) && isOtelKey(full)) {
            const problem = checkOtel(full, value, otelEnv);
            if (problem)
              f.error(t.id, `${where}: ${full}=${JSON.stringify(value)} from ConfigMap ${name}: ${problem}`);
            continue;
          }
          if (!service.keys.has(full)) {
            f.error(t.id, `${where}: ConfigMap ${name} has ${full}, which ${service.name} does not read`);
            continue;
          }
          const problem = checkValue(service, full, value);
          if (problem)
            f.error(t.id, `${where}: ${full}=${JSON.stringify(value)} from ConfigMap ${name}: ${problem}`);
        }
      }
      const planned = PLANNED_KEYS[service.name] ?? {};
      for (const e of c.env ?? []) {
        if (service.keys.has(e.name)) {
          if (e.name in planned) {
            f.warn(
              t.id,
              `${e.name} is now declared by ${service.name}'s spec: drop it from PLANNED_KEYS (service-config.ts)`,
            );
          }
          const problem = e.value === undefined ? undefined : checkValue(service, e.name, e.value);
          if (problem) f.error(t.id, `${where}: ${e.name}=${JSON.stringify(e.value)}: ${problem}`);
        } else if (isOtelKey(e.name)) {
          const problem = e.value === undefined ? undefined : checkOtel(e.name, e.value, otelEnv);
          if (problem) f.error(t.id, `${where}: env ${e.name}=${JSON.stringify(e.value)}: ${problem}`);
        } else if (!(e.name in RUNTIME_ENV) && !(e.name in planned)) {
          f.error(t.id, `${where}: env ${e.name} is not read by ${service.name}`);
        }
      }
    }
    return f.list;
  },
};

function portOf(c: IContainer, name: string): number | undefined {
  return c.ports?.find((p) => p.name === name)?.containerPort;
}

export const funnelPortsRule: Rule = {
  id: "funnel-ports",
  description:
    "Each service listens on 0.0.0.0 at its container port named grpc, serves metrics at the port named metrics (and annotated for Prometheus), and its gRPC probes target the grpc port",
  check(ctx) {
    const f = findings(this.id);
    for (const { t, c, service } of serviceContainers(ctx)) {
      const env = effectiveEnv(ctx, t, c);
      const where = `container "${c.name}"`;
      const grpc = portOf(c, "grpc");
      const addrKey = `RECSYS_${envName(service.name)}_ADDR`;
      const addr = env.get(addrKey)?.value;
      const m = addr === undefined ? null : /^(.*):(\d+)$/.exec(addr);
      if (!m) {
        f.error(t.id, `${where}: ${addrKey} is not set to host:port (the default listens on 127.0.0.1 only)`);
      } else {
        if (m[1] !== "0.0.0.0" && m[1] !== "[::]")
          f.error(t.id, `${where}: ${addrKey}=${addr} does not listen on all interfaces`);
        if (Number(m[2]) !== grpc)
          f.error(t.id, `${where}: ${addrKey}=${addr} but the container port named grpc is ${grpc}`);
      }
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"] as const) {
        const port = c[probe]?.grpc?.port;
        if (port !== undefined && port !== grpc)
          f.error(t.id, `${where}: ${probe} checks gRPC health on ${port}, not the grpc port ${grpc}`);
      }
      const metrics = portOf(c, "metrics");
      const metricsValue = env.get("RECSYS_METRICS_PORT")?.value;
      if (metrics === undefined) f.error(t.id, `${where}: no container port named metrics`);
      else if (Number(metricsValue) !== metrics) {
        f.error(
          t.id,
          `${where}: RECSYS_METRICS_PORT=${metricsValue ?? "<unset>"} but the container port named metrics is ${metrics}`,
        );
      }
      if (
        t.annotations["prometheus.io/scrape"] === "true" &&
        Number(t.annotations["prometheus.io/port"]) !== metrics
      ) {
        f.error(
          t.id,
          `prometheus.io/port=${t.annotations["prometheus.io/port"]} is not the metrics port ${metrics}`,
        );
      }
    }
    return f.list;
  },
};

/** Parses dns:///host:port. */
function parseTarget(target: string): { host: string; port: number } | undefined {
  const m = /^dns:\/\/\/([^/:]+):(\d+)$/.exec(target);
  return m ? { host: (m[1] as string).replace(/\.$/, ""), port: Number(m[2]) } : undefined;
}

export const stageTargetsRule: Rule = {
  id: "stage-targets",
  description:
    "The gateway dials each stage as dns:///<service>.<namespace>.svc.cluster.local:<port>, naming a rendered headless Service that selects that stage's pods on that port",
  check(ctx) {
    const f = findings(this.id);
    for (const { t, c, service } of serviceContainers(ctx)) {
      if (service.name !== "gateway") continue;
      const env = effectiveEnv(ctx, t, c);
      for (const stage of STAGES) {
        const key = `RECSYS_${stage.toUpperCase()}_TARGET`;
        const value = env.get(key)?.value ?? "";
        const target = parseTarget(value);
        if (!target) {
          f.error(
            t.id,
            `${key}="${value}" is not dns:///host:port (client-side round-robin needs the dns resolver)`,
          );
          continue;
        }
        const [svcName, ns = t.namespace, ...rest] = target.host.split(".");
        const suffix = rest.join(".");
        if (!["", "svc", "svc.cluster.local"].includes(suffix)) {
          f.error(t.id, `${key}: "${target.host}" is not <service>.<namespace>.svc.cluster.local`);
          continue;
        }
        const svc = ctx.resources.find(
          (r) => r.kind === "Service" && r.metadata.name === svcName && namespaceOf(r) === ns,
        ) as (IService & K8sObject) | undefined;
        if (!svc) {
          f.error(t.id, `${key}: no Service "${svcName}" in namespace "${ns}"`);
          continue;
        }
        if (svc.spec?.clusterIP !== "None")
          f.error(t.id, `${key}: Service ${svcName} is not headless, so round-robin sees one address`);
        if (!(svc.spec?.ports ?? []).some((p) => p.port === target.port))
          f.error(t.id, `${key}: Service ${svcName} has no port ${target.port}`);
        const stagePods = ctx.templates.find(
          (x) => x.owner.kind === "Deployment" && x.owner.metadata.name === stage && x.namespace === ns,
        );
        if (!stagePods || !mapSelectorMatches(svc.spec?.selector ?? { "": "" }, stagePods.labels)) {
          f.error(t.id, `${key}: Service ${svcName} does not select the ${stage} pods`);
        }
      }
    }
    return f.list;
  },
};

/** The value a service reads for `key`: the container's env, else the spec's default. */
export function configNumber(
  service: ServiceConfig,
  env: ReadonlyMap<string, EnvValue>,
  key: string,
): number | undefined {
  const schema = service.spec[key];
  if (!schema) return undefined;
  const raw = env.get(key)?.value;
  const result = schema.safeParse(raw === undefined || raw === "" ? undefined : raw);
  return result.success && typeof result.data === "number" ? result.data : undefined;
}

export const funnelLimitsRule: Rule = {
  id: "funnel-limits",
  description:
    "What the gateway's built-in funnel asks of each stage (recall max_candidates and channel quotas, the candidates sent to prerank and rank, prerank's keep, the count) is within the limits that stage's configuration enforces; beyond them every call fails with INVALID_ARGUMENT",
  check(ctx) {
    const f = findings(this.id);
    const all = serviceContainers(ctx);
    for (const { t, c, service } of all) {
      if (service.name !== "gateway") continue;
      const env = effectiveEnv(ctx, t, c);
      const file = env.get("RECSYS_FUNNEL_CONFIG")?.value ?? "";
      if (file !== "")
        f.warn(t.id, `RECSYS_FUNNEL_CONFIG=${file}: only the built-in funnel's limits are checked`);
      const stage = (name: string) => {
        const s = all.find((x) => x.service.name === name && x.t.namespace === t.namespace);
        return s
          ? { id: s.t.id, get: (key: string) => configNumber(s.service, effectiveEnv(ctx, s.t, s.c), key) }
          : undefined;
      };
      const recall = stage("recall");
      const prerank = stage("prerank");
      const rank = stage("rank");
      const rerank = stage("rerank");
      const seen = new Set<string>();
      const error = (id: string, message: string) => {
        if (!seen.has(id + message)) f.error(id, message);
        seen.add(id + message);
      };
      for (const funnel of service.funnels ?? []) {
        const ask = funnel.recall.maxCandidates;
        const recallCap = recall?.get("RECSYS_RECALL_MAX_CANDIDATES");
        if (recall && recallCap !== undefined) {
          if (ask > recallCap)
            error(
              recall.id,
              `the gateway's funnel asks for max_candidates ${ask}, above RECSYS_RECALL_MAX_CANDIDATES=${recallCap}: every Recall call fails with INVALID_ARGUMENT`,
            );
          for (const [channel, quota] of Object.entries(funnel.recall.channels)) {
            if (quota > recallCap)
              error(
                recall.id,
                `the gateway's funnel asks channel ${channel} for ${quota}, above RECSYS_RECALL_MAX_CANDIDATES=${recallCap}`,
              );
          }
        }
        const prerankCap = prerank?.get("RECSYS_PRERANK_MAX_CANDIDATES");
        if (prerank && prerankCap !== undefined) {
          if (ask > prerankCap)
            error(
              prerank.id,
              `the gateway sends up to ${ask} candidates, above RECSYS_PRERANK_MAX_CANDIDATES=${prerankCap}`,
            );
          if (funnel.prerank.keep > prerankCap)
            error(
              prerank.id,
              `the gateway's keep ${funnel.prerank.keep} is above RECSYS_PRERANK_MAX_CANDIDATES=${prerankCap}`,
            );
        }
        const rankCap = rank?.get("RECSYS_RANK_MAX_CANDIDATES");
        if (rank && rankCap !== undefined && funnel.prerank.keep > rankCap)
          error(
            rank.id,
            `the gateway sends up to ${funnel.prerank.keep} candidates (prerank keep), above RECSYS_RANK_MAX_CANDIDATES=${rankCap}`,
          );
      }
      const maxCount = configNumber(service, env, "RECSYS_MAX_COUNT");
      const rerankCap = rerank?.get("RECSYS_RERANK_MAX_COUNT");
      if (rerank && maxCount !== undefined && rerankCap !== undefined && maxCount > rerankCap)
        error(
          rerank.id,
          `the gateway accepts count up to RECSYS_MAX_COUNT=${maxCount}, above RECSYS_RERANK_MAX_COUNT=${rerankCap}`,
        );
    }
    return f.list;
  },
};

export const shutdownRule: Rule = {
  id: "shutdown",
  description:
    "terminationGracePeriodSeconds covers the preStop sleep plus RECSYS_SHUTDOWN_GRACE_MS, so in-flight calls drain before SIGKILL",
  check(ctx) {
    const f = findings(this.id);
    for (const { t, c } of serviceContainers(ctx)) {
      const graceMs = Number(effectiveEnv(ctx, t, c).get("RECSYS_SHUTDOWN_GRACE_MS")?.value ?? 5000);
      const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      const period = t.spec.terminationGracePeriodSeconds ?? 30;
      const needed = preStop + Math.ceil(graceMs / 1000) + 1;
      if (period < needed) {
        f.error(
          t.id,
          `terminationGracePeriodSeconds=${period} < preStop ${preStop}s + drain ${graceMs / 1000}s + 1s`,
        );
      }
    }
    return f.list;
  },
};

export const nodeHeapRule: Rule = {
  id: "node-heap",
  description: "A --max-old-space-size in NODE_OPTIONS stays at or below 80% of the container's memory limit",
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      for (const c of [...(t.spec.initContainers ?? []), ...t.spec.containers]) {
        const options = c.env?.find((e) => e.name === "NODE_OPTIONS")?.value ?? "";
        const m = /--max-old-space-size=(\d+)/.exec(options);
        if (!m) continue;
        const heap = Number(m[1]) * 2 ** 20;
        const limit = parseQuantity(c.resources?.limits?.memory);
        if (limit === undefined) continue; // the resources rule reports it
        if (heap > 0.8 * limit) {
          f.error(
            t.id,
            `container "${c.name}": heap ${m[1]} MiB is over 80% of its ${c.resources?.limits?.memory} limit`,
          );
        }
      }
    }
    return f.list;
  },
};
