#!/usr/bin/env node
/**
 * npm run k8s:check  (= node deploy/k8s-check/dist/cli.js)
 *
 * Renders every overlay of k8s/ with `kubectl kustomize` (or a standalone
 * `kustomize build`), validates the resources offline (Kubernetes schemas,
 * Strimzi's CRDs), applies the project rules and checks the Dockerfiles.
 * Prints a summary and exits 1 on any error (warnings do not fail), 2 when
 * it cannot run (no kubectl or kustomize, no CRD schemas).
 *
 *   --overlay NAME   check only this overlay (repeatable)
 *   --print NAME     print kustomize's render of the overlay and exit
 *   --rules          list the rules and exit
 *   --root DIR       repository root (default: found from this file)
 *   --k8s DIR        manifests directory (default: <root>/k8s)
 */
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { checkRepository, countBySeverity } from "./check.js";
import { findRenderer, renderYaml } from "./render.js";
import { RULES } from "./rules/index.js";
import type { Finding } from "./rules/types.js";
import { defaultRepoRoot, loadServiceConfigs } from "./service-config.js";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      overlay: { type: "string", multiple: true },
      print: { type: "string" },
      rules: { type: "boolean", default: false },
      root: { type: "string" },
      k8s: { type: "string" },
    },
  });
  const root = resolve(values.root ?? defaultRepoRoot());
  const k8sDir = resolve(values.k8s ?? join(root, "k8s"));

  if (values.rules) {
    for (const rule of RULES) process.stdout.write(`${rule.id.padEnd(18)} ${rule.description}\n`);
    return 0;
  }
  const renderer = findRenderer();
  if (values.print) {
    process.stdout.write(renderYaml(join(k8sDir, "overlays", values.print), renderer));
    return 0;
  }

  const services = await loadServiceConfigs(root);
  const report = await checkRepository(root, k8sDir, { services, overlays: values.overlay, renderer });
  const all: Finding[] = [
    ...report.overlays.flatMap((o) => o.findings),
    ...report.dockerfiles,
    ...report.observability,
  ];
  const out: string[] = [`k8s-check: ${relative(process.cwd(), k8sDir) || "."}, ${RULES.length} rules`];
  if (report.overlays.length === 0) out.push("  no overlays found");
  for (const o of report.overlays) {
    const { errors, warnings } = countBySeverity(o.findings);
    const status =
      errors === 0
        ? warnings === 0
          ? "ok"
          : `ok, ${warnings} warnings`
        : `${errors} errors, ${warnings} warnings`;
    out.push(`  ${o.overlay.padEnd(6)} ${String(o.resources.length).padStart(3)} resources  ${status}`);
    out.push(...o.findings.map(format));
  }
  const docker = countBySeverity(report.dockerfiles);
  out.push(`  dockerfiles       ${docker.errors === 0 ? "ok" : `${docker.errors} errors`}`);
  out.push(...report.dockerfiles.map(format));
  const monitoring = countBySeverity(report.observability);
  out.push(`  observability     ${monitoring.errors === 0 ? "ok" : `${monitoring.errors} errors`}`);
  out.push(...report.observability.map(format));
  const { errors, warnings } = countBySeverity(all);
  out.push(errors === 0 ? `passed (${warnings} warnings)` : `FAILED: ${errors} errors, ${warnings} warnings`);
  process.stdout.write(`${out.join("\n")}\n`);
  return errors === 0 && report.overlays.length > 0 ? 0 : 1;
}

function format(f: Finding): string {
  return `      ${f.severity === "error" ? "error" : "warn "} [${f.rule}] ${f.resource}: ${f.message}`;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`k8s-check: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
