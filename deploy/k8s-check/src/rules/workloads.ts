/** Rules on pods: probes, resources, security context, images, labels, volumes. */
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IProbe } from "kubernetes-models/v1/Probe";
import { parseImage } from "../images.js";
import { asArray, asObject, asString, idOf, namespaceOf } from "../json.js";
import { containersOf, type LabelSelector, parseQuantity, selectorMatches } from "../resources.js";
import { findings, type Rule } from "./types.js";

const PROBES = ["readinessProbe", "livenessProbe", "startupProbe"] as const;

/** Where a probe connects: a port number or a port name. */
export function probePort(probe: IProbe): number | string | undefined {
  return probe.grpc?.port ?? probe.httpGet?.port ?? probe.tcpSocket?.port;
}

function hasPort(c: IContainer, port: number | string): boolean {
  return (c.ports ?? []).some((p) => (typeof port === "number" ? p.containerPort === port : p.name === port));
}

export const probesRule: Rule = {
  id: "probes",
  description:
    "Every long-running container has readiness, liveness and startup probes, and each probe targets one of the container's declared ports",
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      for (const { container: c, init } of containersOf(t.spec)) {
        if (t.longRunning && !init) {
          for (const probe of PROBES) if (!c[probe]) f.error(t.id, `container "${c.name}" has no ${probe}`);
        }
        for (const probe of PROBES) {
          const p = c[probe];
          const port = p ? probePort(p) : undefined;
          if (port !== undefined && !hasPort(c, port)) {
            f.error(
              t.id,
              `container "${c.name}" ${probe} targets port ${port}, which the container does not declare`,
            );
          }
        }
      }
    }
    return f.list;
  },
};

export const resourcesRule: Rule = {
  id: "resources",
  description:
    "Every container (init containers too) requests and limits cpu and memory, with requests <= limits",
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      for (const { container: c } of containersOf(t.spec)) {
        for (const resource of ["cpu", "memory"]) {
          const request = c.resources?.requests?.[resource];
          const limit = c.resources?.limits?.[resource];
          if (request === undefined) f.error(t.id, `container "${c.name}" has no ${resource} request`);
          if (limit === undefined) f.error(t.id, `container "${c.name}" has no ${resource} limit`);
          const r = parseQuantity(request);
          const l = parseQuantity(limit);
          if (r !== undefined && l !== undefined && r > l) {
            f.error(
              t.id,
              `container "${c.name}" requests more ${resource} (${request}) than its limit (${limit})`,
            );
          }
        }
      }
    }
    return f.list;
  },
};

export const securityContextRule: Rule = {
  id: "security-context",
  description:
    "Every container runs as non-root with a read-only root filesystem, no privilege escalation, all capabilities dropped and the RuntimeDefault seccomp profile",
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      const pod = t.spec.securityContext;
      for (const { container: c } of containersOf(t.spec)) {
        const sc = c.securityContext;
        const where = `container "${c.name}"`;
        if ((sc?.runAsNonRoot ?? pod?.runAsNonRoot) !== true)
          f.error(t.id, `${where}: runAsNonRoot is not true`);
        if ((sc?.runAsUser ?? pod?.runAsUser) === 0) f.error(t.id, `${where}: runAsUser is 0`);
        if (sc?.readOnlyRootFilesystem !== true)
          f.error(t.id, `${where}: readOnlyRootFilesystem is not true`);
        if (sc?.allowPrivilegeEscalation !== false)
          f.error(t.id, `${where}: allowPrivilegeEscalation is not false`);
        if (sc?.privileged === true) f.error(t.id, `${where}: privileged`);
        if (!(sc?.capabilities?.drop ?? []).includes("ALL"))
          f.error(t.id, `${where}: capabilities.drop lacks ALL`);
        if ((sc?.capabilities?.add ?? []).length > 0) f.error(t.id, `${where}: adds capabilities`);
        const seccomp = sc?.seccompProfile?.type ?? pod?.seccompProfile?.type;
        if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") {
          f.error(t.id, `${where}: seccompProfile is not RuntimeDefault`);
        }
      }
    }
    return f.list;
  },
};

export const imagesRule: Rule = {
  id: "images",
  description: 'Every image names a tag or a digest, and no tag is "latest"',
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      for (const { container: c } of containersOf(t.spec)) {
        const image = c.image ?? "";
        const ref = parseImage(image);
        if (!ref.tag && !ref.digest) f.error(t.id, `container "${c.name}": image "${image}" has no tag`);
        if (ref.tag === "latest")
          f.error(t.id, `container "${c.name}": image "${image}" uses the latest tag`);
      }
    }
    return f.list;
  },
};

export const selectorRule: Rule = {
  id: "selector",
  description:
    "A Deployment's or StatefulSet's selector matches its own pod template (the API server refuses it otherwise)",
  check(ctx) {
    const f = findings(this.id);
    for (const t of ctx.templates) {
      if (t.owner.kind !== "Deployment" && t.owner.kind !== "StatefulSet" && t.owner.kind !== "DaemonSet")
        continue;
      const selector = asObject(t.owner.spec)?.selector as LabelSelector | undefined;
      if (!selectorMatches(selector, t.labels))
        f.error(t.id, "spec.selector does not match the pod template's labels");
    }
    return f.list;
  },
};

export const volumesRule: Rule = {
  id: "volumes",
  description:
    "Every volumeMount names a pod volume, every claim exists, and a claim shared by several replicas is ReadWriteMany or ReadOnlyMany",
  check(ctx) {
    const f = findings(this.id);
    const claims = ctx.resources.filter((r) => r.kind === "PersistentVolumeClaim");
    const maxReplicas = (
      ownerName: string,
      ns: string | undefined,
      kind: string,
      replicas: number,
    ): number => {
      const hpa = ctx.resources.find(
        (r) =>
          r.kind === "HorizontalPodAutoscaler" &&
          namespaceOf(r) === ns &&
          asObject(asObject(r.spec)?.scaleTargetRef)?.kind === kind &&
          asObject(asObject(r.spec)?.scaleTargetRef)?.name === ownerName,
      );
      const hpaMax = asObject(hpa?.spec)?.maxReplicas;
      return typeof hpaMax === "number" ? Math.max(hpaMax, replicas) : replicas;
    };
    for (const t of ctx.templates) {
      const volumes = t.spec.volumes ?? [];
      // A StatefulSet's volumeClaimTemplates become pod volumes of the same name.
      const claimTemplates = asArray(asObject(t.owner.spec)?.volumeClaimTemplates).map(
        (v) => asObject(asObject(v)?.metadata)?.name,
      );
      for (const { container: c } of containersOf(t.spec)) {
        for (const m of c.volumeMounts ?? []) {
          if (!volumes.some((v) => v.name === m.name) && !claimTemplates.includes(m.name)) {
            f.error(t.id, `container "${c.name}" mounts "${m.name}", which is not a pod volume`);
          }
        }
      }
      for (const v of volumes) {
        const claimName = v.persistentVolumeClaim?.claimName;
        if (!claimName) continue;
        const claim = claims.find((r) => r.metadata.name === claimName && namespaceOf(r) === t.namespace);
        if (!claim) {
          f.error(t.id, `volume "${v.name}" claims "${claimName}", which is not rendered`);
          continue;
        }
        const replicas = asObject(t.owner.spec)?.replicas;
        const shared =
          t.owner.kind === "DaemonSet" ||
          (t.owner.kind === "Deployment" &&
            maxReplicas(
              String(t.owner.metadata.name),
              t.namespace,
              "Deployment",
              typeof replicas === "number" ? replicas : 1,
            ) > 1);
        const modes = asArray(asObject(claim.spec)?.accessModes).map((m) => asString(m));
        if (shared && !modes.includes("ReadWriteMany") && !modes.includes("ReadOnlyMany")) {
          f.error(
            idOf(claim),
            `mounted by several ${t.id} pods, so it must be ReadWriteMany or ReadOnlyMany`,
          );
        }
      }
    }
    return f.list;
  },
};
