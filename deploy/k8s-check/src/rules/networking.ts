/** Rules on Services, NetworkPolicies and the namespace. */
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { INetworkPolicyPeer } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer";
import type { IService } from "kubernetes-models/v1/Service";
import { idOf, type K8sObject, namespaceOf } from "../json.js";
import { containersOf, mapSelectorMatches, type PodTemplate, selectorMatches } from "../resources.js";
import { SERVICES, STAGES } from "../service-config.js";
import { findings, type Rule } from "./types.js";

function declaresPort(t: PodTemplate, port: number | string): boolean {
  return t.spec.containers.some((c) =>
    (c.ports ?? []).some((p) => (typeof port === "number" ? p.containerPort === port : p.name === port)),
  );
}

export const servicePortsRule: Rule = {
  id: "service-ports",
  description:
    "Every Service selects pods, and each targetPort (name or number) is a port those pods declare",
  check(ctx) {
    const f = findings(this.id);
    for (const r of ctx.resources.filter((x) => x.kind === "Service")) {
      const svc = r as unknown as IService;
      const selector = svc.spec?.selector;
      if (!selector || Object.keys(selector).length === 0) continue; // endpoints managed elsewhere
      const targets = ctx.templates.filter(
        (t) => t.longRunning && t.namespace === namespaceOf(r) && mapSelectorMatches(selector, t.labels),
      );
      if (targets.length === 0) {
        f.error(idOf(r), "its selector matches no pod template");
        continue;
      }
      for (const p of svc.spec?.ports ?? []) {
        const target = p.targetPort ?? p.port;
        for (const t of targets) {
          if (!declaresPort(t, target))
            f.error(idOf(r), `port ${p.name ?? p.port}: targetPort ${target} is not a port of ${t.id}`);
        }
      }
    }
    return f.list;
  },
};

/** Pods that Strimzi creates are not rendered here: policies on them are not checked against templates. */
function selectsOperatorPods(np: INetworkPolicy): boolean {
  const s = np.spec?.podSelector;
  return [...Object.keys(s?.matchLabels ?? {}), ...(s?.matchExpressions ?? []).map((e) => e.key)].some((k) =>
    k.startsWith("strimzi.io/"),
  );
}

export const networkPoliciesRule: Rule = {
  id: "network-policies",
  description:
    "Every NetworkPolicy selects rendered pods, the ports it opens are ports of those pods, and peers named by app.kubernetes.io/name exist",
  check(ctx) {
    const f = findings(this.id);
    for (const r of ctx.resources.filter((x) => x.kind === "NetworkPolicy")) {
      const np = r as unknown as INetworkPolicy;
      if (selectsOperatorPods(np)) continue;
      const selected = ctx.templates.filter(
        (t) => t.namespace === namespaceOf(r) && selectorMatches(np.spec?.podSelector, t.labels),
      );
      if (selected.length === 0) f.error(idOf(r), "its podSelector matches no pod template");
      for (const rule of np.spec?.ingress ?? []) {
        for (const p of rule.ports ?? []) {
          if (p.port === undefined) continue;
          for (const t of selected) {
            if (!declaresPort(t, p.port))
              f.error(idOf(r), `opens port ${p.port}, which ${t.id} does not declare`);
          }
        }
        for (const peer of rule.from ?? []) {
          const app = peer.podSelector?.matchLabels?.["app.kubernetes.io/name"];
          if (app === undefined || peer.namespaceSelector) continue;
          if (
            !ctx.templates.some(
              (t) => t.namespace === namespaceOf(r) && selectorMatches(peer.podSelector, t.labels),
            )
          ) {
            f.error(
              idOf(r),
              `admits pods app.kubernetes.io/name=${app}, but no such pod template is rendered`,
            );
          }
        }
      }
    }
    return f.list;
  },
};

export type Source = { anyone: true } | { anyone: false; peer: INetworkPolicyPeer };

/** Who may reach `port` (number and optional name) of the pods of `t`, by the union of the policies that select them. */
export function sourcesFor(
  policies: readonly K8sObject[],
  t: PodTemplate,
  port: number,
  portName: string | undefined,
): Source[] {
  const out: Source[] = [];
  for (const r of policies) {
    const np = r as unknown as INetworkPolicy;
    if (namespaceOf(r) !== t.namespace || !selectorMatches(np.spec?.podSelector, t.labels)) continue;
    for (const rule of np.spec?.ingress ?? []) {
      const ports = rule.ports ?? [];
      const opens =
        ports.length === 0 ||
        ports.some((p) => p.port === undefined || p.port === port || p.port === portName);
      if (!opens) continue;
      if (!rule.from || rule.from.length === 0) out.push({ anyone: true });
      else for (const peer of rule.from) out.push({ anyone: false, peer });
    }
  }
  return out;
}

/**
 * Whether the pods of `t` may open connections to `port` (TCP unless said):
 * yes when no policy selecting them restricts egress, else when one of their
 * egress rules opens the port. Peers are not resolved (the brokers are
 * Strimzi's pods, not rendered here); the port is what a typo breaks.
 */
export function egressAllows(
  policies: readonly K8sObject[],
  t: PodTemplate,
  port: number,
  protocol: "TCP" | "UDP" = "TCP",
): boolean {
  const restricting = policies.filter((r) => {
    const np = r as unknown as INetworkPolicy;
    return (
      namespaceOf(r) === t.namespace &&
      selectorMatches(np.spec?.podSelector, t.labels) &&
      (np.spec?.policyTypes ?? []).includes("Egress")
    );
  });
  if (restricting.length === 0) return true;
  return restricting.some((r) =>
    ((r as unknown as INetworkPolicy).spec?.egress ?? []).some((rule) => {
      const ports = rule.ports ?? [];
      return (
        ports.length === 0 ||
        ports.some(
          (p) =>
            (p.protocol ?? "TCP") === protocol &&
            (p.port === undefined ||
              p.port === port ||
              (typeof p.port === "number" && p.endPort !== undefined && p.port <= port && port <= p.endPort)),
        )
      );
    }),
  );
}

function containerPort(t: PodTemplate, name: string): number | undefined {
  for (const { container } of containersOf(t.spec)) {
    const p = (container.ports ?? []).find((x) => x.name === name);
    if (p) return p.containerPort;
  }
  return undefined;
}

export const funnelNetworkRule: Rule = {
  id: "funnel-network",
  description:
    "Ingress is denied by default; the gateway admits product-backend namespaces, each stage admits the gateway's pods only, the catalog admits writer namespaces (never every pod), the health-only ports (stream, online-trainer) admit nobody, and every metrics port admits a monitoring namespace",
  check(ctx) {
    const f = findings(this.id);
    const policies = ctx.resources.filter((r) => r.kind === "NetworkPolicy");
    const denyAll = policies.some((r) => {
      const np = r as unknown as INetworkPolicy;
      const s = np.spec?.podSelector;
      return (
        Object.keys(s?.matchLabels ?? {}).length === 0 &&
        (s?.matchExpressions ?? []).length === 0 &&
        (np.spec?.policyTypes ?? []).includes("Ingress") &&
        (np.spec?.ingress ?? []).length === 0
      );
    });
    const ours = ctx.templates.filter(
      (t) =>
        (t.owner.kind === "Deployment" || t.owner.kind === "StatefulSet") &&
        SERVICES.some((s) => s === t.owner.metadata.name),
    );
    if (ours.length === 0) return f.list;
    if (!denyAll)
      f.error(ctx.overlay, "no default-deny ingress NetworkPolicy (podSelector: {}, policyTypes: [Ingress])");
    const gateway = ours.find((t) => t.owner.metadata.name === "gateway");
    const fromGateway = (s: Source) =>
      !s.anyone &&
      !s.peer.namespaceSelector &&
      !s.peer.ipBlock &&
      gateway !== undefined &&
      selectorMatches(s.peer.podSelector, gateway.labels);
    for (const t of ours) {
      const name = String(t.owner.metadata.name);
      const grpc = containerPort(t, "grpc");
      const metrics = containerPort(t, "metrics");
      if (grpc === undefined) {
        f.error(t.id, 'no container port named "grpc"');
        continue;
      }
      const callers = sourcesFor(policies, t, grpc, "grpc");
      if (name === "gateway") {
        if (!callers.some((s) => !s.anyone && s.peer.namespaceSelector)) {
          f.error(t.id, `no NetworkPolicy admits product-backend namespaces to port ${grpc}`);
        }
      } else if ((STAGES as readonly string[]).includes(name)) {
        if (!callers.some(fromGateway))
          f.error(t.id, `no NetworkPolicy admits the gateway's pods to port ${grpc}`);
        if (callers.some((s) => !fromGateway(s)))
          f.error(t.id, `port ${grpc} admits callers other than the gateway's pods`);
      } else if (name === "catalog") {
        // Product backends and admin tooling write items; reading recommendations is not enough.
        if (!callers.some((s) => !s.anyone && s.peer.namespaceSelector)) {
          f.error(t.id, `no NetworkPolicy admits catalog-writer namespaces to port ${grpc}`);
        }
        if (callers.some((s) => s.anyone)) f.error(t.id, `port ${grpc} admits every pod and namespace`);
      } else if (callers.length > 0) {
        f.error(t.id, `port ${grpc} serves health only, but a NetworkPolicy admits callers to it`);
      }
      const scrapers = metrics === undefined ? [] : sourcesFor(policies, t, metrics, "metrics");
      if (metrics !== undefined && !scrapers.some((s) => !s.anyone && s.peer.namespaceSelector)) {
        f.error(t.id, `no NetworkPolicy admits a monitoring namespace to the metrics port ${metrics}`);
      }
    }
    return f.list;
  },
};

const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
]);

export const namespaceRule: Rule = {
  id: "namespace",
  description: "An overlay puts every namespaced resource in one namespace, and renders that Namespace",
  check(ctx) {
    const f = findings(this.id);
    const namespaced = ctx.resources.filter((r) => !CLUSTER_SCOPED.has(r.kind));
    const namespaces = new Set(namespaced.map((r) => namespaceOf(r) ?? ""));
    for (const r of namespaced) if (!namespaceOf(r)) f.error(idOf(r), "has no namespace");
    const named = [...namespaces].filter((n) => n !== "");
    if (named.length > 1) f.error(ctx.overlay, `resources span several namespaces: ${named.join(", ")}`);
    for (const ns of named) {
      if (!ctx.resources.some((r) => r.kind === "Namespace" && r.metadata.name === ns)) {
        f.error(ctx.overlay, `namespace "${ns}" is used but no Namespace resource is rendered`);
      }
    }
    return f.list;
  },
};
