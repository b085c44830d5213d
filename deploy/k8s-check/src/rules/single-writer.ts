/**
 * Services that are the single writer of local state (SINGLE_WRITERS): the
 * catalog's item store (an append-only file, services/catalog/src/store.ts,
 * where `created` and `created_at_ms` are exact only because one process sees
 * every upsert) and the online trainer's state (state.json and shards,
 * services/online-trainer: the positions already trained on, for the one
 * consumer of its samples group). Each runs as a StatefulSet of one pod (a
 * Deployment's rollout would surge a second writer, and its pods get no volume
 * of their own), scaled by nothing, with the state on a volume from its
 * volumeClaimTemplates, which outlives the pod.
 */

import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IContainer } from "kubernetes-models/v1/Container";
import { asArray, asObject, asString, namespaceOf } from "../json.js";
import { SERVICE_KINDS, SINGLE_WRITERS } from "../service-config.js";
import { effectiveEnv, serviceContainers } from "./funnel-config.js";
import { findings, type Rule } from "./types.js";

/** The mount that holds `dir` (the longest mountPath that is a prefix of it). */
function mountOf(c: IContainer, dir: string) {
  return (c.volumeMounts ?? [])
    .filter((m) => dir === m.mountPath || dir.startsWith(`${m.mountPath.replace(/\/$/, "")}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

export const singleWriterRule: Rule = {
  id: "single-writer",
  description:
    "A single-writer service (the catalog's item store, the online trainer's state) is a StatefulSet of exactly one replica that no HPA scales, with its state directory on a writable volume from its volumeClaimTemplates (not an emptyDir, not a shared claim), and the other directories it writes (the online trainer's model store) on writable mounts",
  check(ctx) {
    const f = findings(this.id);
    const hpas = ctx.resources.filter((r) => r.kind === "HorizontalPodAutoscaler");
    for (const { t, c, service } of serviceContainers(ctx)) {
      const writer = SINGLE_WRITERS[service.name];
      if (!writer) {
        if (SERVICE_KINDS[service.name] !== t.owner.kind)
          f.error(t.id, `${service.name} is stateless: it runs as a ${SERVICE_KINDS[service.name]}`);
        continue;
      }
      const name = String(t.owner.metadata.name);
      if (t.owner.kind !== "StatefulSet") {
        f.error(
          t.id,
          `${service.name} must be a StatefulSet: a Deployment's rollout surges a second writer of its ${writer.state}, and its pods get no volume of their own`,
        );
      }
      const replicas = asObject(t.owner.spec)?.replicas;
      if (replicas !== 1)
        f.error(
          t.id,
          `replicas is ${String(replicas ?? "unset")}; the ${writer.state} allows exactly 1 writer`,
        );
      for (const h of hpas) {
        const ref = (h as unknown as IHorizontalPodAutoscaler).spec?.scaleTargetRef;
        if (namespaceOf(h) === t.namespace && ref?.kind === t.owner.kind && ref.name === name)
          f.error(
            t.id,
            `HorizontalPodAutoscaler ${String(h.metadata.name)} scales it: the ${writer.state} allows 1 writer`,
          );
      }

      const env = effectiveEnv(ctx, t, c);
      const dirOf = (key: string): string => {
        const raw = env.get(key)?.value;
        const parsed = service.spec[key]?.safeParse(raw === undefined || raw === "" ? undefined : raw);
        return parsed?.success ? String(parsed.data) : (raw ?? "");
      };
      const writable = (key: string): ReturnType<typeof mountOf> => {
        const dir = dirOf(key);
        if (!dir.startsWith("/")) {
          f.error(t.id, `${key}="${dir}" is relative: it resolves under the image's read-only root`);
          return undefined;
        }
        const mount = mountOf(c, dir);
        if (!mount) {
          f.error(t.id, `${key}=${dir} is on no volume: the read-only root refuses writes`);
          return undefined;
        }
        if (mount.readOnly === true) f.error(t.id, `${key}=${dir} is on read-only mount "${mount.name}"`);
        return mount;
      };

      const mount = writable(writer.stateKey);
      if (mount) {
        const template = asArray(asObject(t.owner.spec)?.volumeClaimTemplates)
          .map((v) => asObject(v))
          .find((v) => asString(asObject(v?.metadata)?.name) === mount.name);
        if (!template) {
          f.error(
            t.id,
            `${writer.stateKey}=${dirOf(writer.stateKey)} is on volume "${mount.name}", not on one of its volumeClaimTemplates: an emptyDir loses the ${writer.state} with the pod, a shared claim has other writers`,
          );
        }
      }
      for (const key of writer.writes) writable(key);
    }
    return f.list;
  },
};
