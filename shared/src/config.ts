/**
 * Configuration comes from environment variables, read once and validated at
 * start-up. A missing or invalid value stops the process with the variable's
 * name. Every key a service reads is declared in its schema, so the set of
 * known keys can be listed (the k8s config check uses `describeConfig`).
 */
import { z } from "zod";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export type EnvSpec = Record<string, z.ZodType>;
export type ConfigOf<S extends EnvSpec> = { [K in keyof S]: z.output<S[K]> };

/** Parses `env` against `spec` (keys are the variable names). */
export function loadConfig<S extends EnvSpec>(spec: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(spec)) {
    const raw = env[name];
    const result = schema.safeParse(raw === "" ? undefined : raw);
    if (result.success) out[name] = result.data;
    else
      problems.push(
        `${name}=${raw === undefined ? "<unset>" : JSON.stringify(raw)}: ${result.error.issues.map((i) => i.message).join("; ")}`,
      );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** Helpers for the common shapes of environment values. */
export const env = {
  int: (def: number, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce.number().int().min(min).max(max).default(def),
  num: (def: number, min = -Infinity, max = Infinity) => z.coerce.number().min(min).max(max).default(def),
  str: (def: string) => z.string().default(def),
  requiredStr: () => z.string({ error: "required" }).min(1),
  bool: (def: boolean) =>
    z
      .enum(["true", "false", "1", "0"])
      .default(def ? "true" : "false")
      .transform((v) => v === "true" || v === "1"),
  oneOf: <T extends string>(values: readonly [T, ...T[]], def: T) => z.enum(values).default(def as never),
  /** "a=1,b=2" -> {a: 1, b: 2} */
  numberMap: (def: string) =>
    z
      .string()
      .default(def)
      .transform((s, ctx) => {
        const out: Record<string, number> = {};
        for (const part of s
          .split(",")
          .map((p) => p.trim())
          .filter(Boolean)) {
          const [k, v] = part.split("=");
          const n = Number(v);
          if (!k || v === undefined || !Number.isFinite(n)) {
            ctx.addIssue({ code: "custom", message: `expected key=number pairs, got "${part}"` });
            return z.NEVER;
          }
          out[k.trim()] = n;
        }
        return out;
      }),
};

/** Starts a process: loads config or prints the problems and exits 2. */
export function loadConfigOrExit<S extends EnvSpec>(service: string, spec: S): ConfigOf<S> {
  try {
    return loadConfig(spec);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Variable names a spec reads, for documentation and manifest checks. */
export function describeConfig(spec: EnvSpec): string[] {
  return Object.keys(spec).sort();
}

/** What one variable's schema accepts, in words, for the configuration reference. */
export interface EnvVarDescription {
  /** "integer", "number", "string", "boolean", "enum" or "key=number list". */
  readonly type: string;
  /** The default as it would be written in the environment; absent when the variable is required. */
  readonly default?: string;
  /** The values accepted ("1 to 64", "≥ 1024", "`cpu`, `cuda`"); absent when any string is. */
  readonly allowed?: string;
}

/** Describes a schema made by the `env` helpers (unset or empty means the default). */
export function describeEnvVar(schema: z.ZodType): EnvVarDescription {
  if (schema instanceof z.ZodPipe) {
    const inner = describeEnvVar(schema.in as z.ZodType);
    if (inner.type === "string") return { ...inner, type: "key=number list", allowed: "`key=number,...`" };
    return inner;
  }
  if (schema instanceof z.ZodDefault) {
    const inner = describeEnvVar(schema.unwrap() as z.ZodType);
    return { ...inner, default: String(schema.def.defaultValue) };
  }
  if (schema instanceof z.ZodEnum) {
    const values = schema.options.map(String);
    const bool = ["true", "false", "1", "0"];
    if (values.length === bool.length && bool.every((v) => values.includes(v)))
      return { type: "boolean", allowed: bool.map((v) => `\`${v}\``).join(", ") };
    return { type: "enum", allowed: values.map((v) => `\`${v}\``).join(", ") };
  }
  if (schema instanceof z.ZodNumber) {
    const unbounded = (v: number | null) =>
      v === null || !Number.isFinite(v) || Math.abs(v) >= Number.MAX_SAFE_INTEGER;
    const { minValue: min, maxValue: max } = schema;
    const allowed =
      !unbounded(min) && !unbounded(max)
        ? `${min} to ${max}`
        : !unbounded(min)
          ? `≥ ${min}`
          : !unbounded(max)
            ? `≤ ${max}`
            : undefined;
    return { type: schema.isInt ? "integer" : "number", ...(allowed ? { allowed } : {}) };
  }
  if (schema instanceof z.ZodString)
    return { type: "string", ...((schema.minLength ?? 0) > 0 ? { allowed: "non-empty (required)" } : {}) };
  return { type: schema.def.type };
}
