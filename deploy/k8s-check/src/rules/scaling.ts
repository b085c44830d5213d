/**
 * Every Deployment is stateless here: it scales with an HPA and is protected
 * by exactly one PDB. A single-writer service (SINGLE_WRITERS: the catalog,
 * the online trainer) has a PDB too, and no HPA: it does not scale (rule
 * single-writer, which also reports one run as a Deployment).
 */
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { idOf, namespaceOf } from "../json.js";
import { type PodTemplate, selectorMatches } from "../resources.js";
import { isServiceName, SINGLE_WRITERS } from "../service-config.js";
import { findings, type Rule } from "./types.js";

export const scalingRule: Rule = {
  id: "hpa-pdb",
  description:
    "Every stateless Deployment has exactly one HPA (autoscaling/v2) and exactly one PDB, every single-writer service (catalog, online-trainer) exactly one PDB and no HPA (rule single-writer); HPAs and PDBs target something; a PDB never blocks every eviction",
  check(ctx) {
    const f = findings(this.id);
    const hpas = ctx.resources.filter((r) => r.kind === "HorizontalPodAutoscaler");
    const pdbs = ctx.resources.filter((r) => r.kind === "PodDisruptionBudget");
    const singleWriter = (t: PodTemplate) => {
      const name = String(t.owner.metadata.name);
      return isServiceName(name) && SINGLE_WRITERS[name] !== undefined;
    };
    const deployments = ctx.templates.filter((t) => t.owner.kind === "Deployment" && !singleWriter(t));

    for (const t of deployments) {
      const name = t.owner.metadata.name;
      const mine = hpas.filter((h) => {
        const ref = (h as unknown as IHorizontalPodAutoscaler).spec?.scaleTargetRef;
        return (
          namespaceOf(h) === t.namespace &&
          ref?.kind === "Deployment" &&
          ref.name === name &&
          ref.apiVersion === "apps/v1"
        );
      });
      if (mine.length !== 1) f.error(t.id, `${mine.length} HorizontalPodAutoscalers target it; expected 1`);
      const hpa = mine[0] as unknown as IHorizontalPodAutoscaler | undefined;
      const minReplicas = hpa?.spec?.minReplicas ?? 1;
      if (hpa && hpa.apiVersion !== "autoscaling/v2") f.error(t.id, "its HPA is not autoscaling/v2");
      if (hpa && minReplicas > (hpa.spec?.maxReplicas ?? 0))
        f.error(t.id, "its HPA has minReplicas > maxReplicas");
      for (const m of hpa?.spec?.metrics ?? []) {
        const resource = m.type === "Resource" ? m.resource?.name : undefined;
        if (!resource) continue;
        for (const c of t.spec.containers) {
          if (c.resources?.requests?.[resource] === undefined) {
            f.error(
              t.id,
              `its HPA scales on ${resource} utilisation but container "${c.name}" requests no ${resource}`,
            );
          }
        }
      }
      if (hpa && typeof (t.owner.spec as { replicas?: unknown } | undefined)?.replicas === "number") {
        f.warn(t.id, "spec.replicas is set although an HPA owns the count: every apply resets the scale");
      }
      checkPdb(t, minReplicas);
    }
    const statefulServices = ctx.templates.filter(
      (t) =>
        singleWriter(t) || (t.owner.kind === "StatefulSet" && isServiceName(String(t.owner.metadata.name))),
    );
    for (const t of statefulServices) {
      const replicas = (t.owner.spec as { replicas?: unknown } | undefined)?.replicas;
      checkPdb(t, typeof replicas === "number" ? replicas : 1);
    }

    function checkPdb(t: PodTemplate, minReplicas: number): void {
      const covering = pdbs.filter(
        (p) =>
          namespaceOf(p) === t.namespace &&
          selectorMatches((p as unknown as IPodDisruptionBudget).spec?.selector, t.labels),
      );
      if (covering.length !== 1) {
        f.error(
          t.id,
          `${covering.length} PodDisruptionBudgets select its pods; expected 1 (the eviction API refuses pods with several)`,
        );
      }
      const pdb = (covering[0] as unknown as IPodDisruptionBudget | undefined)?.spec;
      if (pdb && (pdb.minAvailable === undefined) === (pdb.maxUnavailable === undefined)) {
        f.error(t.id, "its PDB must set exactly one of minAvailable and maxUnavailable");
      }
      if (pdb?.maxUnavailable === 0 || pdb?.maxUnavailable === "0%")
        f.error(t.id, "its PDB allows no eviction (maxUnavailable 0)");
      if (typeof pdb?.minAvailable === "number" && pdb.minAvailable >= minReplicas) {
        f.error(
          t.id,
          `its PDB keeps minAvailable=${pdb.minAvailable} of at least ${minReplicas} replicas: node drains block`,
        );
      }
    }

    for (const h of hpas) {
      const ref = (h as unknown as IHorizontalPodAutoscaler).spec?.scaleTargetRef;
      const target = ctx.resources.find(
        (r) => r.kind === ref?.kind && r.metadata.name === ref?.name && namespaceOf(r) === namespaceOf(h),
      );
      if (!target) f.error(idOf(h), `scaleTargetRef ${ref?.kind}/${ref?.name} is not rendered`);
    }
    for (const p of pdbs) {
      const selector = (p as unknown as IPodDisruptionBudget).spec?.selector;
      if (!ctx.templates.some((t) => t.namespace === namespaceOf(p) && selectorMatches(selector, t.labels))) {
        f.error(idOf(p), "selects no pod template");
      }
    }
    return f.list;
  },
};
