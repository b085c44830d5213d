/**
 * docs/configuration.md, generated: every environment variable the services
 * read, from their zod config specs (types, defaults and ranges at run time,
 * through describeEnvVar) and the doc comments above the keys (read from the
 * TypeScript sources with the compiler API), plus the variables some code
 * reads straight from process.env, flagged as such.
 *
 *   npm run docs:config            # rewrites docs/configuration.md
 *   config-docs.spec.ts            # fails while the file is out of date
 *
 * The services are not dependencies of this package: their built specs are
 * imported at run time from services/<name>/dist/config.js (export
 * `<camelCaseName>ConfigSpec`), as the k8s config check does.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { commonConfigSpec, describeEnvVar, type EnvSpec, type EnvVarDescription } from "@recsys/shared";
import ts from "typescript";
import { SERVICES, type ServiceName } from "./stack.js";

export const CONFIG_DOC = "docs/configuration.md";
export const CONFIG_DOC_COMMAND = "npm run docs:config";

/** Where the specs are declared: shared code and the services' own. */
const SPEC_ROOTS = ["shared/src", "services/*/src"];
/** Where direct process.env reads are looked for. */
const DIRECT_ROOTS = ["shared/src", "services/*/src", "deploy/local/src"];

/**
 * What each variable read straight from the environment (not through a config
 * spec) means. A read the generator finds with no entry here is an error: add
 * one, after reading the code that uses it.
 */
export const DIRECT_ENV: Readonly<Record<string, string>> = {
  OTEL_EXPORTER_OTLP_ENDPOINT:
    "OTLP endpoint of the OpenTelemetry exporter; tracing is on when it (or the traces-only endpoint) is set (shared/src/tracing.ts)",
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "OTLP endpoint for traces only; also switches tracing on",
  OTEL_SDK_DISABLED: "`true` switches tracing off whatever the endpoints say",
  OTEL_SERVICE_NAME: "The traces' service.name; default the first service of the process",
  OTEL_TRACES_EXPORTER: "Traces exporters, comma-separated (default `otlp`); `none` switches tracing off",
  PYTHONPATH:
    "Kept after the trainer's own directory in the PYTHONPATH of the Python trainer the online trainer runs",
  RECSYS_BASE_PORT:
    "npm start: the gateway's port (default 50051); the other services take the 7 after it, their metrics ports start 100 above",
  RECSYS_CATALOG_E2E_BASE_PORT: "Tests: first port of the catalog end-to-end test's services",
  RECSYS_CATALOG_TARGET:
    "`npm run upsert`: the catalog service's address (default 127.0.0.1:50057; --target wins)",
  RECSYS_COLOCATED_BASE_PORT: "Tests: first port of the co-located layout's end-to-end test",
  RECSYS_CONFIG_E2E_BASE_PORT:
    "Tests: first port of the end-to-end test that a stack serves the data directory and model store it is given",
  RECSYS_COLOCATED_PLAN:
    "Set by the local runner for the co-located process: JSON list of the services it runs and their environments",
  RECSYS_DATA_DIR:
    "CLIs, benchmarks, tests and the local runner: the dataset directory when no option names one (default data/ml-latest-small)",
  RECSYS_E2E_BASE_PORT: "Tests: first port of the gateway funnel end-to-end test",
  RECSYS_E2E_FULL_BASE_PORT: "Tests: first port of the Kafka and Redis end-to-end test",
  RECSYS_E2E_MODELS_BASE_PORT: "Tests: first port of the model-update end-to-end test",
  RECSYS_E2E_REPLAY_BASE_PORT: "Tests: first port of the recall-replay end-to-end test",
  RECSYS_ENCODER_DIR:
    "Content-embedding and encoder CLIs and tests: the pretrained text encoder's directory (default var/encoder/all-minilm-l6-v2)",
  RECSYS_EXIT_WITH_PARENT:
    "`1` (set by the local runner): the service shuts down when the process that launched it is gone",
  RECSYS_GATEWAY_TARGET:
    "`npm run recommend`: the gateway's address (default 127.0.0.1:50051; --target wins)",
  RECSYS_KAFKA_BROKERS:
    "npm start --full and the feedback and model-update benchmarks: the Kafka brokers the started services use",
  RECSYS_LAYOUT: "npm start: `colocated` (default) or `processes`; --layout wins",
  RECSYS_THREADS:
    "npm start, colocated layout: stages that run on a worker thread of their own (default `recall`; `none`); --threads wins",
  RECSYS_LOG_LEVEL:
    "Level of a logger created without one (CLIs, tools); the services take it from their config",
  RECSYS_MODEL_STORE:
    "Content-embedding CLI, ranking benchmark and the local runner: the model store when no option names one (default var/models)",
  RECSYS_ONLINE: "npm start: `1` runs the online trainer as well, `0` keeps it off with --full",
  RECSYS_PRERANK_E2E_BASE_PORT: "Tests: first port of the prerank end-to-end test",
  RECSYS_RANK_E2E_BASE_PORT: "Tests: first port of the rank end-to-end test",
  RECSYS_REDIS_URL:
    "npm start --full and the feedback and model-update benchmarks: the Redis the started services use",
  RECSYS_ROOT: "npm start: the repository root (default the working directory)",
  RECSYS_TEST_KAFKA_BROKERS: "Tests: a Kafka broker for the Kafka tests; unset, they are skipped",
  RECSYS_TEST_LOG_LEVEL: "Tests: log level of the online trainer's Kafka test (default silent)",
  RECSYS_TEST_MODEL_STORE: "Tests: the model store the tests read (default var/test-models)",
  RECSYS_TEST_ONLINE_MODELS:
    "Tests: models the online-update integration test fine-tunes (default em3,prerank,kuaiformer)",
  RECSYS_TEST_ONLINE_PYTHON: "Tests: set to run the online-update integration test with the Python trainer",
  RECSYS_TEST_REDIS_URL: "Tests: a Redis for the Redis tests; unset, they are skipped",
  RECSYS_TRACING_BASE_PORT: "Tests: first port of the tracing end-to-end test",
};

/** The repository root, from this file's location (deploy/local/dist/). */
export function repoRoot(): string {
  return fileURLToPath(new URL("../../../", import.meta.url));
}

/** "online-trainer" -> "onlineTrainer" (the prefix of its exported config spec). */
function camelName(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Each service's composed spec at run time: the common keys, then its own (which win, as in createRuntime). */
async function loadServiceSpecs(root: string): Promise<Map<ServiceName, EnvSpec>> {
  const out = new Map<ServiceName, EnvSpec>();
  for (const name of SERVICES) {
    const file = join(root, "services", name, "dist", "config.js");
    if (!existsSync(file)) throw new Error(`${file} is missing: build the services first (npx tsc -b)`);
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    const own = mod[`${camelName(name)}ConfigSpec`];
    if (typeof own !== "object" || own === null)
      throw new Error(`${file} does not export ${camelName(name)}ConfigSpec`);
    out.set(name, { ...commonConfigSpec, ...(own as EnvSpec) });
  }
  return out;
}

/** A key of a spec object literal as written in the source. */
interface SpecEntry {
  readonly key: string;
  readonly doc: string;
}
/** One `*Spec` object literal: its keys and spreads, in source order. */
interface SpecDecl {
  readonly name: string;
  readonly file: string;
  readonly entries: ReadonlyArray<{ spread: string } | SpecEntry>;
}

/** The files under `roots` (globs of one `*` segment), .ts sources only, without generated code. */
function sourceFiles(root: string, roots: readonly string[], withTests: boolean): string[] {
  const dirs = roots.flatMap((r) => {
    const [head, tail] = r.split("/*/");
    if (tail === undefined) return [join(root, r)];
    return readdirSync(join(root, head as string), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => join(root, head as string, d.name, tail));
  });
  const out: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir, { recursive: true }) as string[];
    } catch {
      continue; // services/trainer has no src
    }
    for (const name of names) {
      const parts = name.split(sep);
      if (
        !name.endsWith(".ts") ||
        name.endsWith(".d.ts") ||
        parts.includes("gen") ||
        parts.includes("node_modules")
      )
        continue;
      if (!withTests && name.endsWith(".spec.ts")) continue;
      out.push(join(dir, name));
    }
  }
  return out.sort();
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
}

/** The text of the last `/** ... *\/` comment before `node`, on one line. */
function docComment(node: ts.Node, source: ts.SourceFile): string {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? [];
  const last = ranges.filter((r) => source.text.startsWith("/**", r.pos)).at(-1);
  if (!last) return "";
  return source.text
    .slice(last.pos + 3, last.end - 2)
    .split("\n")
    .map((line) => line.replace(/^\s*\*? ?/, "").trim())
    .join(" ")
    .replace(/\s+/g, " ")
    .trim();
}

function objectLiteral(expr: ts.Expression | undefined): ts.ObjectLiteralExpression | undefined {
  let e = expr;
  while (e && (ts.isSatisfiesExpression(e) || ts.isAsExpression(e) || ts.isParenthesizedExpression(e)))
    e = e.expression;
  return e && ts.isObjectLiteralExpression(e) ? e : undefined;
}

/** Every `const <name>Spec = { ... }` in the sources. */
export function scanSpecs(root: string): Map<string, SpecDecl> {
  const out = new Map<string, SpecDecl>();
  for (const file of sourceFiles(root, SPEC_ROOTS, false)) {
    const source = parse(file);
    const visit = (node: ts.Node): void => {
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.name.text.endsWith("Spec")) {
        const literal = objectLiteral(node.initializer);
        if (literal) {
          const entries: SpecDecl["entries"][number][] = [];
          for (const p of literal.properties) {
            if (ts.isSpreadAssignment(p) && ts.isIdentifier(p.expression))
              entries.push({ spread: p.expression.text });
            else if (ts.isPropertyAssignment(p) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)))
              entries.push({ key: p.name.text, doc: docComment(p, source) });
          }
          out.set(node.name.text, { name: node.name.text, file: relative(root, file), entries });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out;
}

/** Where a key of a composed spec comes from: the spec that declares it, the last one winning as in `{...a, ...b}`. */
function resolveKeys(
  specs: Map<string, SpecDecl>,
  names: readonly string[],
): Map<string, SpecEntry & { spec: string }> {
  const out = new Map<string, SpecEntry & { spec: string }>();
  const expand = (name: string, seen: readonly string[]): void => {
    const decl = specs.get(name);
    if (!decl)
      throw new Error(`config spec ${name} is spread but not declared under ${SPEC_ROOTS.join(", ")}`);
    if (seen.includes(name)) throw new Error(`config spec ${name} spreads itself`);
    for (const entry of decl.entries) {
      if ("spread" in entry) expand(entry.spread, [...seen, name]);
      else {
        out.delete(entry.key); // re-declared later: takes the later place, as at run time
        out.set(entry.key, { ...entry, spec: name });
      }
    }
  };
  for (const name of names) expand(name, []);
  return out;
}

/** A variable read straight from the environment, and the files that read it. */
export interface DirectRead {
  readonly name: string;
  readonly files: readonly string[];
}

/**
 * `process.env.X`, `process.env["X"]`, `const { X } = process.env`, and `env.X`
 * where `env` is a parameter typed NodeJS.ProcessEnv.
 */
export function scanDirectReads(root: string): DirectRead[] {
  const found = new Map<string, Set<string>>();
  const isProcessEnv = (e: ts.Expression): boolean =>
    ts.isPropertyAccessExpression(e) &&
    e.name.text === "env" &&
    ts.isIdentifier(e.expression) &&
    e.expression.text === "process";
  for (const file of sourceFiles(root, DIRECT_ROOTS, true)) {
    const source = parse(file);
    const rel = relative(root, file);
    const envParams = new Set<string>();
    const add = (name: string) => {
      if (/^[A-Z][A-Z0-9_]*$/.test(name)) found.set(name, (found.get(name) ?? new Set()).add(rel));
    };
    const visit = (node: ts.Node): void => {
      if (
        ts.isParameter(node) &&
        ts.isIdentifier(node.name) &&
        node.type?.getText(source).replace(/\s/g, "") === "NodeJS.ProcessEnv"
      )
        envParams.add(node.name.text);
      if (ts.isPropertyAccessExpression(node)) {
        const e = node.expression;
        if (isProcessEnv(e) || (ts.isIdentifier(e) && envParams.has(e.text))) add(node.name.text);
      }
      if (ts.isElementAccessExpression(node) && isProcessEnv(node.expression)) {
        const arg = node.argumentExpression;
        if (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg)) add(arg.text);
      }
      if (
        ts.isVariableDeclaration(node) &&
        ts.isObjectBindingPattern(node.name) &&
        node.initializer &&
        isProcessEnv(node.initializer)
      )
        for (const el of node.name.elements) {
          const key = el.propertyName ?? el.name;
          if (ts.isIdentifier(key)) add(key.text);
        }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return [...found.entries()]
    .map(([name, files]) => ({ name, files: [...files].sort() }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** One row of a spec's table: a key, the services whose composed spec takes this declaration, and what it accepts. */
interface Row extends EnvVarDescription {
  readonly key: string;
  readonly services: ServiceName[];
  readonly doc: string;
}

/** Section titles of the shared specs; a service's own spec is titled with its name. */
const SHARED_SPECS: ReadonlyArray<[string, string]> = [
  ["commonConfigSpec", "Every service"],
  ["busConfigSpec", "Event bus (services that publish or consume events)"],
  ["itemFeedConfigSpec", "Items feed (services that follow the catalog's items topic)"],
  ["streamProcessingSpec", "Stream processing (the stream service, or the gateway running it in-process)"],
  ["userStateSpec", "User state (gateway reads, stream writes)"],
];

/** Escapes what Markdown would take for table syntax or HTML. */
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const code = (s: string | undefined) => (s === undefined ? "—" : s === "" ? "*(empty)*" : `\`${s}\``);

export async function generateConfigDocs(root: string): Promise<string> {
  const configs = await loadServiceSpecs(root);
  const specs = scanSpecs(root);
  const problems: string[] = [];
  const sections = new Map<string, Map<string, Row>>(); // spec name -> row key -> row
  for (const service of SERVICES) {
    const spec = configs.get(service);
    if (!spec) continue;
    const declared = resolveKeys(specs, ["commonConfigSpec", `${camelName(service)}ConfigSpec`]);
    const runtimeKeys = Object.keys(spec).sort();
    const staticKeys = [...declared.keys()].sort();
    if (runtimeKeys.join() !== staticKeys.join())
      problems.push(
        `${service}: keys at run time [${runtimeKeys.join(", ")}] differ from the sources [${staticKeys.join(", ")}]`,
      );
    for (const key of runtimeKeys) {
      const decl = declared.get(key);
      const schema = spec[key];
      if (!decl || !schema) continue;
      if (!decl.doc) problems.push(`${key} (${decl.spec}, ${specs.get(decl.spec)?.file}) has no doc comment`);
      const desc = describeEnvVar(schema);
      const rowKey = JSON.stringify([key, desc, decl.doc]);
      const rows = sections.get(decl.spec) ?? new Map<string, Row>();
      sections.set(decl.spec, rows);
      const row = rows.get(rowKey) ?? { key, ...desc, doc: decl.doc, services: [] };
      row.services.push(service);
      rows.set(rowKey, row);
    }
  }
  const direct = scanDirectReads(root);
  for (const read of direct)
    if (!DIRECT_ENV[read.name])
      problems.push(
        `${read.name} is read from process.env (${read.files.join(", ")}) but has no meaning in DIRECT_ENV (deploy/local/src/config-docs.ts)`,
      );
  if (problems.length > 0)
    throw new Error(`cannot document the configuration:\n  ${[...new Set(problems)].join("\n  ")}`);

  const allServices = (services: readonly ServiceName[]) =>
    services.length === SERVICES.length ? "all" : services.join(", ");
  const out: string[] = [
    "# Configuration reference",
    "",
    `<!-- Generated by \`${CONFIG_DOC_COMMAND}\` (deploy/local/src/config-docs.ts) from the services' config specs; do not edit by hand. -->`,
    "",
    "Every service is configured by environment variables, read once and validated at start-up",
    "(`loadConfig` in shared/src/config.ts): an invalid value stops the process with the variable's",
    "name, and an unset or empty variable takes its default. Each service reads the keys of",
    "*Every service* plus those of its own spec (services/&lt;name&gt;/src/config.ts), which may",
    "include a shared group below. Where a service re-declares a key, its own default and range",
    "apply to it, so a variable can appear in more than one table.",
    "",
    `This file is generated: after changing a spec or a doc comment, run \`${CONFIG_DOC_COMMAND}\`.`,
    "",
  ];
  const ordered = [
    ...SHARED_SPECS,
    ...SERVICES.map((s): [string, string] => [`${camelName(s)}ConfigSpec`, `${s} service`]),
  ];
  for (const [spec, title] of ordered) {
    const rows = [...(sections.get(spec)?.values() ?? [])].sort((a, b) => a.key.localeCompare(b.key));
    if (rows.length === 0) continue;
    out.push(`## ${title}`, "", `Declared in \`${spec}\` (${specs.get(spec)?.file}).`, "");
    out.push(
      "| Variable | Read by | Type | Default | Allowed | Meaning |",
      "| --- | --- | --- | --- | --- | --- |",
    );
    for (const r of rows)
      out.push(
        `| \`${r.key}\` | ${allServices(r.services)} | ${r.type} | ${cell(code(r.default))} | ${cell(r.allowed ?? "any")} | ${cell(r.doc)} |`,
      );
    out.push("");
  }
  const specKeys = new Set([...configs.values()].flatMap((c) => Object.keys(c)));
  out.push(
    "## Read directly from the environment",
    "",
    "**Flagged: not validated by a spec.** These are read from `process.env` by code outside the",
    "services' config specs: CLIs, benchmarks, the local runner, the tracing set-up and tests.",
    "*Also a spec key* means a service reads the same name through its spec (documented above);",
    "the direct read is a separate use. Meanings are kept in `DIRECT_ENV` in the generator.",
    "",
    "| Variable | Read in | Also a spec key | Meaning |",
    "| --- | --- | --- | --- |",
  );
  for (const read of direct)
    out.push(
      `| \`${read.name}\` | ${read.files.map((f) => `\`${f}\``).join(", ")} | ${specKeys.has(read.name) ? "yes" : "no"} | ${cell(DIRECT_ENV[read.name] ?? "")} |`,
    );
  out.push("");
  return out.join("\n");
}
