/**
 * The catalog is the single writer of its item store (an append-only file,
 * services/catalog/src/store.ts): `created` and `created_at_ms` are exact only
 * because one process sees every upsert. So it runs as a StatefulSet of one
 * pod (a Deployment's rollout would surge a second writer), scaled by nothing,
 * with the store on a volume of its own that outlives the pod.
 */
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { asArray, asObject, asString, namespaceOf } from "../json.js";
import { effectiveEnv, serviceContainers } from "./funnel-config.js";
import { findings, type Rule } from "./types.js";

const STORE_KEY = "RECSYS_CATALOG_STORE_DIR";

export const catalogStoreRule: Rule = {
  id: "catalog-store",
  description:
    "The catalog, single writer of its item store, is a StatefulSet of exactly one replica that no HPA scales, with RECSYS_CATALOG_STORE_DIR on a writable volume from its volumeClaimTemplates (not an emptyDir, not a shared claim)",
  check(ctx) {
    const f = findings(this.id);
    const hpas = ctx.resources.filter((r) => r.kind === "HorizontalPodAutoscaler");
    for (const { t, c, service } of serviceContainers(ctx)) {
      if (service.name !== "catalog") continue;
      const name = String(t.owner.metadata.name);
      if (t.owner.kind !== "StatefulSet") {
        f.error(
          t.id,
          "the catalog must be a StatefulSet: a Deployment's rollout surges a second writer of the item store, and its pods get no volume of their own",
        );
      }
      const replicas = asObject(t.owner.spec)?.replicas;
      if (replicas !== 1)
        f.error(t.id, `replicas is ${String(replicas ?? "unset")}; the item store allows exactly 1 writer`);
      for (const h of hpas) {
        const ref = (h as unknown as IHorizontalPodAutoscaler).spec?.scaleTargetRef;
        if (namespaceOf(h) === t.namespace && ref?.kind === t.owner.kind && ref.name === name)
          f.error(
            t.id,
            `HorizontalPodAutoscaler ${String(h.metadata.name)} scales it: the item store allows 1 writer`,
          );
      }

      const raw = effectiveEnv(ctx, t, c).get(STORE_KEY)?.value;
      const parsed = service.spec[STORE_KEY]?.safeParse(raw === undefined || raw === "" ? undefined : raw);
      const dir = parsed?.success ? String(parsed.data) : (raw ?? "");
      if (!dir.startsWith("/")) {
        f.error(t.id, `${STORE_KEY}="${dir}" is relative: it resolves under the image's read-only root`);
        continue;
      }
      const mount = (c.volumeMounts ?? [])
        .filter((m) => dir === m.mountPath || dir.startsWith(`${m.mountPath.replace(/\/$/, "")}/`))
        .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      if (!mount) {
        f.error(t.id, `${STORE_KEY}=${dir} is on no volume: the read-only root refuses writes`);
        continue;
      }
      if (mount.readOnly === true) f.error(t.id, `${STORE_KEY}=${dir} is on read-only mount "${mount.name}"`);
      const template = asArray(asObject(t.owner.spec)?.volumeClaimTemplates)
        .map((v) => asObject(v))
        .find((v) => asString(asObject(v?.metadata)?.name) === mount.name);
      if (!template) {
        f.error(
          t.id,
          `${STORE_KEY}=${dir} is on volume "${mount.name}", not on one of its volumeClaimTemplates: an emptyDir loses the items with the pod, a shared claim has other writers`,
        );
      }
    }
    return f.list;
  },
};
