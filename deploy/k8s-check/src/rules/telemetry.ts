/**
 * Tracing export: the services read the OpenTelemetry SDK's standard
 * variables (otel.ts) and trace only where OTEL_EXPORTER_OTLP_ENDPOINT (or
 * the traces-specific one) is set. Where an overlay sets it, every service
 * must, each under its own OTEL_SERVICE_NAME, and the collector it names must
 * be reachable: a rendered Service with that port, admitted by the
 * collector's NetworkPolicies, opened by the service's egress policies.
 */
import { namespaceOf } from "../json.js";
import { checkReachable, splitHost } from "./event-bus.js";
import { effectiveEnv, serviceContainers } from "./funnel-config.js";
import { egressAllows } from "./networking.js";
import { findings, type Rule } from "./types.js";

/** The OTLP ports: gRPC and HTTP. */
const OTLP_GRPC = 4317;
const OTLP_HTTP = 4318;

export const telemetryRule: Rule = {
  id: "telemetry",
  description:
    "Where an overlay exports traces (OTEL_EXPORTER_OTLP_ENDPOINT), every service does, under its own OTEL_SERVICE_NAME, over the port of its OTLP protocol, to a rendered collector Service that NetworkPolicies let it reach",
  check(ctx) {
    const f = findings(this.id);
    const policies = ctx.resources.filter((r) => r.kind === "NetworkPolicy");
    const services = serviceContainers(ctx);
    const namespaces = new Set(ctx.resources.map((r) => namespaceOf(r)).filter(Boolean));
    const endpointOf = (env: ReturnType<typeof effectiveEnv>) =>
      env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?.value ?? env.get("OTEL_EXPORTER_OTLP_ENDPOINT")?.value;
    const tracing = services.filter(({ t, c }) => endpointOf(effectiveEnv(ctx, t, c)));
    if (tracing.length === 0) return f.list; // tracing off in this overlay

    for (const { t, c, service } of services) {
      const where = `container "${c.name}"`;
      const env = effectiveEnv(ctx, t, c);
      const endpoint = endpointOf(env);
      if (!endpoint) {
        f.error(
          t.id,
          `${where}: no OTEL_EXPORTER_OTLP_ENDPOINT although ${tracing[0]?.c.name} exports traces: its spans would be missing from every trace`,
        );
        continue;
      }
      // OTEL_SERVICE_NAME: a literal, or the downward API on the pod's labels.
      const named = c.env?.find((e) => e.name === "OTEL_SERVICE_NAME");
      const fieldPath = named?.valueFrom?.fieldRef?.fieldPath;
      const label = fieldPath ? /^metadata\.labels\['([^']+)'\]$/.exec(fieldPath)?.[1] : undefined;
      const serviceName = label ? t.labels[label] : env.get("OTEL_SERVICE_NAME")?.value;
      if (serviceName !== service.name) {
        f.error(
          t.id,
          `${where}: OTEL_SERVICE_NAME is ${serviceName === undefined ? "unset" : `"${serviceName}"`}, not "${service.name}" (its spans would be attributed to another service)`,
        );
      }
      let url: URL;
      try {
        url = new URL(endpoint);
      } catch {
        continue; // config-keys reports the value
      }
      const protocol =
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")?.value ??
        env.get("OTEL_EXPORTER_OTLP_PROTOCOL")?.value ??
        "http/protobuf";
      const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
      const expected = protocol === "grpc" ? OTLP_GRPC : OTLP_HTTP;
      if (port !== expected && (port === OTLP_GRPC || port === OTLP_HTTP)) {
        f.error(
          t.id,
          `${where}: ${endpoint} is port ${port}, but OTLP over ${protocol} is served on ${expected}`,
        );
      }
      const host = splitHost(url.hostname, t.namespace);
      if (!host || !namespaces.has(host.namespace)) {
        f.warn(t.id, `${where}: collector ${url.hostname} is outside this render; not checked`);
        continue;
      }
      checkReachable(ctx, policies, t, "OTEL_EXPORTER_OTLP_ENDPOINT", url.hostname, port, (m) =>
        f.error(t.id, `${where}: ${m}`),
      );
      if (!egressAllows(policies, t, port))
        f.error(
          t.id,
          `${where}: its egress NetworkPolicies do not open port ${port} (collector ${endpoint})`,
        );
    }
    return f.list;
  },
};
