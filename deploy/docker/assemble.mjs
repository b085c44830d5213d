#!/usr/bin/env node
/**
 * Assembles the runtime tree of one Node service image (run by the build
 * stage of deploy/docker/service.Dockerfile, from the repository root):
 *
 *   node deploy/docker/assemble.mjs <service> --node-modules DIR --out DIR [--arch amd64|arm64] [--require-cuda]
 *
 * - node_modules: the production install of the service's workspace
 *   (npm ci --omit=dev --workspace=@recsys/<service>), copied as is;
 * - the workspace packages the service depends on, transitively, through
 *   `dependencies` (not devDependencies): their package.json and dist/, tests
 *   left out; links to other workspaces are removed;
 * - onnxruntime-node's binaries for other platforms removed (about 240 MB);
 * - deploy/docker/wait-for-files.mjs, the init containers' helper.
 * --require-cuda fails unless ONNX Runtime's CUDA provider was installed.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "node-modules": { type: "string" },
    out: { type: "string" },
    arch: { type: "string", default: "amd64" },
    "require-cuda": { type: "boolean", default: false },
  },
});
const service = positionals[0];
if (!service || !values["node-modules"] || !values.out) {
  process.stderr.write(
    "usage: assemble.mjs <service> --node-modules DIR --out DIR [--arch amd64|arm64] [--require-cuda]\n",
  );
  process.exit(2);
}
const out = values.out;
const readJson = (path) => JSON.parse(readFileSync(path, "utf8"));

/** Workspace package name -> directory, from the root package.json ("dir" or "dir/*" entries). */
function workspaces() {
  const map = new Map();
  for (const entry of readJson("package.json").workspaces ?? []) {
    const dirs = entry.endsWith("/*")
      ? readdirSync(entry.slice(0, -2), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => join(entry.slice(0, -2), d.name))
      : [entry];
    for (const dir of dirs) {
      if (existsSync(join(dir, "package.json"))) map.set(readJson(join(dir, "package.json")).name, dir);
    }
  }
  return map;
}

const packages = workspaces();
const root = readJson(join("services", service, "package.json")).name;
const needed = new Set();
const visit = (name) => {
  if (needed.has(name) || !packages.has(name)) return;
  needed.add(name);
  for (const dep of Object.keys(readJson(join(packages.get(name), "package.json")).dependencies ?? {}))
    visit(dep);
};
visit(root);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
cpSync("package.json", join(out, "package.json"));
cpSync(values["node-modules"], join(out, "node_modules"), { recursive: true, verbatimSymlinks: true });

for (const [name, dir] of packages) {
  if (!needed.has(name)) {
    rmSync(join(out, "node_modules", name), { recursive: true, force: true });
    continue;
  }
  if (!existsSync(join(dir, "dist")))
    throw new Error(`${name}: ${dir}/dist is missing (not built by tsc -b services/${service}?)`);
  mkdirSync(join(out, dir), { recursive: true });
  cpSync(join(dir, "package.json"), join(out, dir, "package.json"));
  cpSync(join(dir, "dist"), join(out, dir, "dist"), {
    recursive: true,
    filter: (src) => !/\.spec\.(js|d\.ts)(\.map)?$/.test(src) && !src.endsWith(".tsbuildinfo"),
  });
}

const arch = values.arch === "arm64" ? "arm64" : "x64";
const ort = join(out, "node_modules", "onnxruntime-node", "bin", "napi-v6");
if (existsSync(ort)) {
  for (const os of readdirSync(ort)) {
    for (const cpu of readdirSync(join(ort, os))) {
      if (os !== "linux" || cpu !== arch) rmSync(join(ort, os, cpu), { recursive: true, force: true });
    }
  }
}
if (values["require-cuda"] && !existsSync(join(ort, "linux", "x64", "libonnxruntime_providers_cuda.so"))) {
  throw new Error("ONNX Runtime's CUDA provider is missing (install with ONNXRUNTIME_NODE_INSTALL=cuda12)");
}

mkdirSync(join(out, "deploy", "docker"), { recursive: true });
cpSync(join("deploy", "docker", "wait-for-files.mjs"), join(out, "deploy", "docker", "wait-for-files.mjs"));
process.stdout.write(`assembled ${service} in ${out}: ${[...needed].sort().join(", ")}\n`);
