/**
 * Checks of the image build files (deploy/docker/*.Dockerfile), which cannot
 * be built on machines without a Docker engine: every base image pinned,
 * the final stage non-root, a Dockerfile-specific .dockerignore that keeps
 * data/ out of the build context (MovieLens may not be copied into images),
 * and a Dockerfile for every recsys/* image the manifests name.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseImage } from "./kustomize/images.js";
import type { Finding } from "./rules/types.js";

export const DOCKER_DIR = join("deploy", "docker");
const PROJECT_REPOSITORY = "recsys/";

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

/** Problems of one Dockerfile, as "line N: ..." or file-level messages. */
export function checkDockerfile(text: string): string[] {
  const problems: string[] = [];
  const stages: string[] = [];
  let userInFinalStage: string | undefined;
  for (const ins of parseDockerfile(text)) {
    if (ins.keyword === "FROM") {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      const image = words[0] ?? "";
      const alias = words[1]?.toLowerCase() === "as" ? words[2] : undefined;
      if (!stages.includes(image)) {
        const ref = parseImage(image);
        if (image.includes("$"))
          problems.push(`line ${ins.line}: FROM ${image}: a variable base image is not pinned`);
        else if (!ref.tag && !ref.digest) problems.push(`line ${ins.line}: FROM ${image} has no tag`);
        else if (ref.tag === "latest") problems.push(`line ${ins.line}: FROM ${image} uses the latest tag`);
      }
      if (alias) stages.push(alias);
      userInFinalStage = undefined;
    } else if (ins.keyword === "USER") {
      userInFinalStage = ins.args;
    }
  }
  if (!/^\s*FROM\s/im.test(text)) problems.push("no FROM");
  const uid = userInFinalStage?.split(":")[0];
  if (uid === undefined) problems.push("the final stage sets no USER (the image would run as root)");
  else if (!/^\d+$/.test(uid) || uid === "0") {
    problems.push(
      `USER ${userInFinalStage} must be a numeric, non-zero uid (runAsNonRoot cannot verify a name)`,
    );
  }
  return problems;
}

/** Problems of every Dockerfile, and recsys/* images without one. */
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
  for (const image of new Set(images)) {
    const name = parseImage(image).name;
    if (!name.startsWith(PROJECT_REPOSITORY)) continue;
    const expected = `${name.slice(PROJECT_REPOSITORY.length)}.Dockerfile`;
    if (!files.includes(expected)) error(image, `no ${join(DOCKER_DIR, expected)} builds this image`);
  }
  return out;
}
