/**
 * Checks of the image build files (deploy/docker/*.Dockerfile), which cannot
 * be built on machines without a Docker engine: every base image pinned (the
 * Node base by digest), every target stage non-root with a numeric USER and,
 * on the Node base, without npm and npx; a Dockerfile-specific .dockerignore
 * that keeps data/ out of the build context (MovieLens may not be copied
 * into images); and a build (file, SERVICE argument naming a workspace,
 * target stage) for every recsys/* image the manifests name.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseImage } from "./images.js";
import type { Finding } from "./rules/types.js";

export const DOCKER_DIR = join("deploy", "docker");
const PROJECT_REPOSITORY = "recsys/";

/** How an image is built: the Dockerfile, its SERVICE build argument, the target stage (the last if none). */
export interface ImageBuild {
  readonly file: string;
  readonly service?: string;
  readonly target?: string;
}

/** Every recsys/* image, as deploy/docker/build.sh builds it. */
export const IMAGE_BUILDS: Readonly<Record<string, ImageBuild>> = {
  gateway: { file: "service.Dockerfile", service: "gateway" },
  recall: { file: "service.Dockerfile", service: "recall" },
  prerank: { file: "service.Dockerfile", service: "prerank" },
  rank: { file: "service.Dockerfile", service: "rank" },
  "rank-gpu": { file: "service.Dockerfile", service: "rank", target: "rank-gpu" },
  rerank: { file: "service.Dockerfile", service: "rerank" },
  stream: { file: "service.Dockerfile", service: "stream" },
  catalog: { file: "service.Dockerfile", service: "catalog" },
  "online-trainer": { file: "service.Dockerfile", service: "online-trainer", target: "online-trainer" },
  trainer: { file: "trainer.Dockerfile" },
};

/** Base images that must be pinned by digest: the Node runtime of every service. */
const DIGEST_REQUIRED = new Set(["node", "docker.io/library/node", "library/node"]);

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with line continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (pending === "" && /^\s*(#|$)/.test(line)) return;
    if (pending === "") start = i + 1;
    if (/^\s*#/.test(line)) return; // comment inside a continuation
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = "";
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (m) out.push({ keyword: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start });
  });
  return out;
}

interface Stage {
  readonly alias?: string;
  /** The base: an image, or the alias of an earlier stage. */
  readonly base: string;
  readonly line: number;
  readonly instructions: Instruction[];
}

/** The stages of a Dockerfile, in order. */
export function stagesOf(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of parseDockerfile(text)) {
    if (ins.keyword === "FROM") {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      const alias = words[1]?.toLowerCase() === "as" ? words[2] : undefined;
      stages.push({ alias, base: words[0] ?? "", line: ins.line, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return stages;
}

/** Problems of one Dockerfile, as "line N: ..." or file-level messages. */
export function checkDockerfile(text: string): string[] {
  const problems: string[] = [];
  const stages = stagesOf(text);
  if (stages.length === 0) return ["no FROM"];
  const aliases = new Set(stages.flatMap((s) => (s.alias ? [s.alias] : [])));
  const used = new Set<string>();
  for (const stage of stages) {
    if (aliases.has(stage.base)) used.add(stage.base);
    for (const ins of stage.instructions) {
      const from = /--from=(\S+)/.exec(ins.args)?.[1];
      if ((ins.keyword === "COPY" || ins.keyword === "ADD") && from) used.add(from);
    }
  }
  /** The image a stage runs on, through the stages it derives from. */
  const imageOf = (stage: Stage): string => {
    const parent = stages.find((s) => s.alias === stage.base);
    return parent && parent !== stage ? imageOf(parent) : stage.base;
  };
  for (const stage of stages) {
    if (aliases.has(stage.base)) continue;
    const image = stage.base;
    const ref = parseImage(image);
    const at = `line ${stage.line}: FROM ${image}`;
    if (image.includes("$")) problems.push(`${at}: a variable base image is not pinned`);
    else if (!ref.tag && !ref.digest) problems.push(`${at} has no tag`);
    else if (ref.tag === "latest") problems.push(`${at} uses the latest tag`);
    if (ref.digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(ref.digest))
      problems.push(`${at}: the digest is not sha256:<64 hex digits>`);
    if (DIGEST_REQUIRED.has(ref.name) && ref.digest === undefined)
      problems.push(`${at}: the Node base must be pinned by digest (${ref.name}:<version>@sha256:...)`);
  }
  // A stage no other stage builds on or copies from is an image: the default
  // target (the last stage) or a named one (docker build --target).
  stages.forEach((stage, i) => {
    if (i < stages.length - 1 && stage.alias && used.has(stage.alias)) return;
    const name = stage.alias ? `stage ${stage.alias}` : "the final stage";
    const user = stage.instructions.filter((ins) => ins.keyword === "USER").at(-1)?.args;
    const uid = user?.split(":")[0];
    if (uid === undefined) problems.push(`${name} sets no USER (the image would run as root)`);
    else if (!/^\d+$/.test(uid) || uid === "0") {
      problems.push(
        `${name}: USER ${user} must be a numeric, non-zero uid (runAsNonRoot cannot verify a name)`,
      );
    }
    if (DIGEST_REQUIRED.has(parseImage(imageOf(stage)).name)) {
      const removed = stage.instructions
        .filter((ins) => ins.keyword === "RUN")
        .map((ins) => ins.args)
        .join(" ");
      for (const tool of ["npm", "npx"]) {
        if (!new RegExp(`\\brm\\b[^;&|]*/usr/local/bin/${tool}\\b`).test(removed))
          problems.push(`${name} keeps ${tool} (remove /usr/local/bin/${tool}: the runtime needs node only)`);
      }
    }
  });
  return problems;
}

/** The directories of the root package.json's workspaces. */
function workspaces(repoRoot: string): string[] {
  try {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { workspaces?: string[] };
    return pkg.workspaces ?? [];
  } catch {
    return [];
  }
}

/** Problems of every Dockerfile, and recsys/* images without a build. */
export function checkDockerfiles(repoRoot: string, images: Iterable<string>): Finding[] {
  const dir = join(repoRoot, DOCKER_DIR);
  const out: Finding[] = [];
  const error = (resource: string, message: string) =>
    out.push({ rule: "dockerfiles", resource, message, severity: "error" });
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".Dockerfile")) : [];
  for (const file of files) {
    const path = join(dir, file);
    const rel = relative(repoRoot, path);
    for (const p of checkDockerfile(readFileSync(path, "utf8"))) error(rel, p);
    const ignore = `${path}.dockerignore`;
    if (!existsSync(ignore)) {
      error(
        rel,
        `no ${file}.dockerignore beside it (the build context would include data/ and node_modules/)`,
      );
    } else {
      const patterns = readFileSync(ignore, "utf8")
        .split("\n")
        .map((l) => l.trim());
      for (const needed of ["data", "node_modules"]) {
        if (!patterns.some((p) => p === needed || p === `${needed}/` || p === `**/${needed}`)) {
          error(relative(repoRoot, ignore), `does not exclude ${needed}`);
        }
      }
    }
  }
  const declared = workspaces(repoRoot);
  for (const [image, build] of Object.entries(IMAGE_BUILDS)) {
    const where = `${PROJECT_REPOSITORY}${image}`;
    if (!files.includes(build.file)) {
      error(where, `no ${join(DOCKER_DIR, build.file)} builds this image`);
      continue;
    }
    const text = readFileSync(join(dir, build.file), "utf8");
    const stages = stagesOf(text);
    if (build.target && !stages.some((s) => s.alias === build.target))
      error(where, `${build.file} has no stage ${build.target} (--target)`);
    if (build.service !== undefined) {
      if (!parseDockerfile(text).some((ins) => ins.keyword === "ARG" && /^SERVICE(=|$)/.test(ins.args)))
        error(where, `${build.file} declares no ARG SERVICE`);
      const workspace = `services/${build.service}`;
      if (!declared.includes(workspace) || !existsSync(join(repoRoot, workspace, "package.json")))
        error(where, `SERVICE=${build.service}: ${workspace} is not a workspace of the root package.json`);
    }
  }
  for (const image of new Set(images)) {
    const name = parseImage(image).name;
    if (!name.startsWith(PROJECT_REPOSITORY)) continue;
    if (!IMAGE_BUILDS[name.slice(PROJECT_REPOSITORY.length)])
      error(
        image,
        `no build for this image (IMAGE_BUILDS in deploy/k8s-check/src/dockerfiles.ts, deploy/docker/build.sh)`,
      );
  }
  return out;
}
