/**
 * The OpenTelemetry SDK's standard environment variables (OTEL_*, from the
 * OpenTelemetry specification's "Environment Variable Specification" and the
 * OTLP exporter's). The services' zod specs do not declare them: the SDK
 * reads them. So the config-keys rule accepts these keys for every service,
 * checks their values here, and refuses any other OTEL_* key (a misspelt one
 * would be ignored silently by the SDK). Tracing is off where no endpoint is set.
 */

type Check = (value: string) => string | undefined;

const oneOf =
  (...values: string[]): Check =>
  (v) =>
    values.includes(v) ? undefined : `expected one of ${values.join(", ")}`;
const listOf =
  (...values: string[]): Check =>
  (v) => {
    const bad = v
      .split(",")
      .map((x) => x.trim())
      .filter((x) => !values.includes(x));
    return bad.length === 0 ? undefined : `unknown ${bad.join(", ")}; expected any of ${values.join(", ")}`;
  };
const url: Check = (v) => {
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:" ? undefined : "expected an http(s):// URL";
  } catch {
    return "expected an http(s):// URL";
  }
};
const integer: Check = (v) => (/^\d+$/.test(v) ? undefined : "expected a non-negative integer");
const text: Check = (v) => (v.trim() === "" ? "must not be empty" : undefined);
const keyValues: Check = (v) =>
  v.split(",").every((kv) => /^[^=,\s]+=[^,]*$/.test(kv.trim())) ? undefined : "expected key=value,key=value";
const boolean = oneOf("true", "false");
const protocol = oneOf("grpc", "http/protobuf", "http/json");
const compression = oneOf("gzip", "none");
const exporters = listOf("otlp", "zipkin", "console", "prometheus", "none");

const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
  "jaeger_remote",
  "parentbased_jaeger_remote",
  "xray",
];

export const OTEL_KEYS: Readonly<Record<string, Check>> = {
  OTEL_SDK_DISABLED: boolean,
  OTEL_SERVICE_NAME: text,
  OTEL_RESOURCE_ATTRIBUTES: keyValues,
  OTEL_LOG_LEVEL: oneOf("none", "error", "warn", "info", "debug", "verbose", "all"),
  OTEL_PROPAGATORS: listOf("tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none"),
  OTEL_TRACES_SAMPLER: oneOf(...SAMPLERS),
  OTEL_TRACES_SAMPLER_ARG: text,
  OTEL_TRACES_EXPORTER: exporters,
  OTEL_METRICS_EXPORTER: exporters,
  OTEL_LOGS_EXPORTER: exporters,
  OTEL_NODE_RESOURCE_DETECTORS: text,
  OTEL_BSP_SCHEDULE_DELAY: integer,
  OTEL_BSP_EXPORT_TIMEOUT: integer,
  OTEL_BSP_MAX_QUEUE_SIZE: integer,
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: integer,
  OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: integer,
  OTEL_ATTRIBUTE_COUNT_LIMIT: integer,
  OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: integer,
  OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: integer,
  OTEL_SPAN_EVENT_COUNT_LIMIT: integer,
  OTEL_SPAN_LINK_COUNT_LIMIT: integer,
  OTEL_METRIC_EXPORT_INTERVAL: integer,
  OTEL_METRIC_EXPORT_TIMEOUT: integer,
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
  OTEL_EXPORTER_OTLP_HEADERS: keyValues,
  OTEL_EXPORTER_OTLP_TIMEOUT: integer,
  OTEL_EXPORTER_OTLP_COMPRESSION: compression,
  OTEL_EXPORTER_OTLP_INSECURE: boolean,
  OTEL_EXPORTER_OTLP_CERTIFICATE: text,
  ...Object.fromEntries(
    ["TRACES", "METRICS", "LOGS"].flatMap((signal) => [
      [`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`, url],
      [`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`, protocol],
      [`OTEL_EXPORTER_OTLP_${signal}_HEADERS`, keyValues],
      [`OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`, integer],
      [`OTEL_EXPORTER_OTLP_${signal}_COMPRESSION`, compression],
    ]),
  ),
};

export function isOtelKey(key: string): boolean {
  return key.startsWith("OTEL_");
}

/** The problem with an OTEL_* key and its value, if any. */
export function checkOtel(key: string, value: string, env?: ReadonlyMap<string, string>): string | undefined {
  const check = OTEL_KEYS[key];
  if (!check) return "not a standard OpenTelemetry SDK variable";
  const problem = check(value);
  if (problem) return problem;
  if (key === "OTEL_TRACES_SAMPLER_ARG") {
    const sampler = env?.get("OTEL_TRACES_SAMPLER") ?? "";
    const ratio = Number(value);
    if (sampler.endsWith("traceidratio") && !(ratio >= 0 && ratio <= 1))
      return `${sampler} takes a ratio from 0 to 1`;
  }
  return undefined;
}
