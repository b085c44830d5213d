/**
 * Checks of the monitoring configuration against the code and the manifests:
 * every metric the Grafana dashboard and the Prometheus rules query is one
 * the services export (read from their built code), a default Node.js metric,
 * or a documented external one; the scrape config covers every overlay's
 * namespace; and every pod annotated for scraping declares the port named
 * "metrics" that the scrape config keeps.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { OverlayReport } from "./check.js";
import { type JsonObject, namespaceOf } from "./json.js";
import { containersOf, podTemplates } from "./resources.js";
import type { Finding } from "./rules/types.js";

export const DASHBOARD = join("deploy", "grafana", "recsys-funnel.json");
export const SCRAPE_CONFIG = join("deploy", "prometheus", "prometheus.yml");
export const RULES_FILE = join("deploy", "prometheus", "recsys.rules.yml");

/** Metrics that come from elsewhere than our code, with their source. */
export const EXTERNAL_METRICS: Readonly<Record<string, string>> = {
  kafka_consumergroup_lag: "Strimzi's Kafka Exporter (Kafka.spec.kafkaExporter)",
  nodejs_eventloop_lag_p99_seconds: "@prometheus-io/client default metrics",
  process_resident_memory_bytes: "@prometheus-io/client default metrics",
  process_cpu_seconds_total: "@prometheus-io/client default metrics",
};

/** recsys_* metric names registered in the built services and shared code. */
export function exportedMetrics(repoRoot: string): Set<string> {
  const names = new Set<string>();
  const dirs = [join(repoRoot, "shared", "dist")];
  const services = join(repoRoot, "services");
  if (existsSync(services)) for (const s of readdirSync(services)) dirs.push(join(services, s, "dist"));
  for (const dir of dirs.filter((d) => existsSync(d))) {
    for (const file of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
      if (!file.endsWith(".js") || file.endsWith(".spec.js")) continue;
      for (const m of readFileSync(join(dir, file), "utf8").matchAll(/name:\s*"(recsys_[a-z0-9_]+)"/g))
        names.add(m[1] as string);
    }
  }
  return names;
}

/** Metric names a PromQL expression reads (histogram suffixes removed). */
export function metricsIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const names = withoutStrings.match(/\b(?:recsys|kafka|nodejs|process)_[a-z0-9_]+\b/g) ?? [];
  return [...new Set(names.map((n) => n.replace(/_(bucket|count|sum)$/, "")))];
}

function dashboardExprs(dashboard: JsonObject): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (k === "expr" && typeof x === "string") out.push(x);
        else walk(x);
      }
    }
  };
  walk(dashboard.panels);
  return out;
}

export function checkObservability(repoRoot: string, overlays: readonly OverlayReport[]): Finding[] {
  const out: Finding[] = [];
  const error = (resource: string, message: string) =>
    out.push({ rule: "observability", resource, message, severity: "error" });
  const exported = exportedMetrics(repoRoot);
  const known = (name: string, recorded: Set<string>) =>
    exported.has(name) || name in EXTERNAL_METRICS || recorded.has(name);

  const sources: Array<[string, string[], Set<string>]> = [];
  const dashboardPath = join(repoRoot, DASHBOARD);
  if (!existsSync(dashboardPath)) error(DASHBOARD, "missing");
  else
    sources.push([
      DASHBOARD,
      dashboardExprs(JSON.parse(readFileSync(dashboardPath, "utf8")) as JsonObject),
      new Set(),
    ]);
  const rulesPath = join(repoRoot, RULES_FILE);
  if (existsSync(rulesPath)) {
    const groups = ((parse(readFileSync(rulesPath, "utf8")) as JsonObject).groups ?? []) as JsonObject[];
    const rules = groups.flatMap((g) => (g.rules ?? []) as JsonObject[]);
    const recorded = new Set(rules.map((r) => r.record).filter((r): r is string => typeof r === "string"));
    sources.push([RULES_FILE, rules.map((r) => String(r.expr ?? "")), recorded]);
  }
  for (const [file, exprs, recorded] of sources) {
    for (const expr of exprs) {
      for (const name of metricsIn(expr)) {
        if (!known(name, recorded))
          error(
            file,
            `queries ${name}, which no service exports (built code) and no external source provides`,
          );
      }
    }
    // recording rules are named level:metric:operations; their inputs are checked above
    for (const expr of exprs)
      for (const m of expr.matchAll(/\brecsys:[a-z0-9_:]+/g))
        if (!recorded.has(m[0]) && file === RULES_FILE) error(file, `uses ${m[0]}, which no rule records`);
  }

  const scrapePath = join(repoRoot, SCRAPE_CONFIG);
  const scrapeText = existsSync(scrapePath) ? readFileSync(scrapePath, "utf8") : "";
  if (!scrapeText) error(SCRAPE_CONFIG, "missing");
  for (const o of overlays) {
    const namespaces = new Set(
      o.resources.map((r) => namespaceOf(r)).filter((n): n is string => n !== undefined),
    );
    for (const ns of namespaces) {
      if (
        scrapeText &&
        !new RegExp(`names:\\s*\\[[^\\]]*\\b${ns.replace(/[-.]/g, "\\$&")}\\b`).test(scrapeText)
      ) {
        error(SCRAPE_CONFIG, `does not discover pods in namespace "${ns}" (overlay ${o.overlay})`);
      }
    }
    for (const t of podTemplates(o.resources)) {
      if (t.annotations["prometheus.io/scrape"] !== "true") continue;
      const metrics = containersOf(t.spec)
        .filter((c) => !c.init)
        .flatMap(({ container }) => container.ports ?? [])
        .find((p) => p.name === "metrics");
      if (!metrics)
        error(t.id, 'annotated prometheus.io/scrape but declares no container port named "metrics"');
      else if (Number(t.annotations["prometheus.io/port"]) !== metrics.containerPort) {
        error(
          t.id,
          `prometheus.io/port=${t.annotations["prometheus.io/port"]} is not its metrics port ${metrics.containerPort}`,
        );
      }
    }
  }
  return out;
}
