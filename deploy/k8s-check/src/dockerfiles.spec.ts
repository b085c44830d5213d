import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { checkDockerfile, checkDockerfiles, parseDockerfile } from "./dockerfiles.js";
import { defaultRepoRoot } from "./service-config.js";

const NODE =
  "node:24.18.0-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d";
const RM = "RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx";

describe("checkDockerfile", () => {
  it("accepts a pinned Node base, stage references, named targets and numeric USERs", () => {
    const text = [
      "# syntax=docker/dockerfile:1",
      "ARG SERVICE",
      `FROM ${NODE} AS node`,
      "FROM node AS build",
      "RUN echo a \\",
      "  # a comment inside a continuation",
      "  && echo b",
      "FROM --platform=linux/amd64 nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS gpu",
      "COPY --from=node /usr/local/bin/node /usr/local/bin/node",
      "COPY --from=build /app ./",
      "USER 10001:10001",
      "FROM node AS service",
      RM,
      "COPY --from=build /app ./",
      "USER 10001:10001",
    ].join("\n");
    assert.deepEqual(checkDockerfile(text), []);
    assert.match(parseDockerfile(text).find((i) => i.keyword === "RUN")?.args ?? "", /^echo a\s+&& echo b$/);
  });

  const cases: Array<[string, string, RegExp]> = [
    ["an untagged base", "FROM debian\nUSER 1", /line 1: FROM debian has no tag/],
    ["a latest base", "FROM debian:latest\nUSER 1", /latest tag/],
    ["a variable base", "ARG V\nFROM debian:$V\nUSER 1", /variable base image/],
    ["a Node base pinned by tag only", `FROM node:24.18.0-bookworm-slim\n${RM}\nUSER 1`, /pinned by digest/],
    ["a malformed digest", "FROM debian:12@sha256:abc\nUSER 1", /not sha256:<64 hex digits>/],
    ["no USER in the final stage", "FROM debian:12 AS a\nUSER 1\nFROM debian:12", /final stage sets no USER/],
    [
      "no USER in a named target",
      `FROM debian:12 AS gpu\nRUN true\nFROM debian:12 AS service\nUSER 1`,
      /stage gpu sets no USER/,
    ],
    ["a named USER", "FROM debian:12\nUSER node", /numeric, non-zero uid/],
    ["USER 0", "FROM debian:12\nUSER 0:0", /numeric, non-zero uid/],
    ["npm left in a Node runtime", `FROM ${NODE} AS node\nFROM node\nUSER 1`, /final stage keeps npm/],
  ];
  for (const [name, text, expected] of cases) {
    it(`reports ${name}`, () =>
      assert.ok(
        checkDockerfile(text).some((p) => expected.test(p)),
        checkDockerfile(text).join("\n"),
      ));
  }
});

describe("checkDockerfiles", () => {
  const repo = defaultRepoRoot();
  const tmp = mkdtempSync(join(tmpdir(), "k8s-check-docker-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  /** A copy of the repository's package.json files and deploy/docker, edited by `edit`. */
  const copy = (name: string, edit: (root: string) => void): string => {
    const root = join(tmp, name);
    cpSync(join(repo, "deploy", "docker"), join(root, "deploy", "docker"), { recursive: true });
    cpSync(join(repo, "package.json"), join(root, "package.json"));
    for (const s of [
      "gateway",
      "recall",
      "prerank",
      "rank",
      "rerank",
      "stream",
      "catalog",
      "online-trainer",
    ]) {
      mkdirSync(join(root, "services", s), { recursive: true });
      cpSync(join(repo, "services", s, "package.json"), join(root, "services", s, "package.json"));
    }
    edit(root);
    return root;
  };
  const dockerfile = (root: string) => join(root, "deploy", "docker", "service.Dockerfile");

  it("passes on the repository's Dockerfiles, with a build for every recsys image", () => {
    const images = ["recsys/gateway:0.1.0", "recsys/rank-gpu:0.1.0", "recsys/trainer:0.1.0", "redis:7"];
    assert.deepEqual(
      checkDockerfiles(
        copy("ok", () => {}),
        images,
      ),
      [],
    );
  });

  it("reports an image nothing builds", () => {
    const findings = checkDockerfiles(
      copy("unknown", () => {}),
      ["recsys/ranker:0.1.0"],
    );
    assert.ok(findings.some((f) => /no build for this image/.test(f.message)));
  });

  it("reports a SERVICE that is not a workspace", () => {
    const root = copy("workspace", (r) => {
      const pkg = JSON.parse(readFileSync(join(r, "package.json"), "utf8")) as { workspaces: string[] };
      pkg.workspaces = pkg.workspaces.filter((w) => w !== "services/stream");
      writeFileSync(join(r, "package.json"), JSON.stringify(pkg));
    });
    const findings = checkDockerfiles(root, []);
    assert.ok(
      findings.some(
        (f) => f.resource === "recsys/stream" && /services\/stream is not a workspace/.test(f.message),
      ),
      JSON.stringify(findings),
    );
  });

  it("reports a missing target stage, and a Node base without its digest", () => {
    const root = copy("stage", (r) => {
      const text = readFileSync(dockerfile(r), "utf8")
        .replace(" AS rank-gpu", " AS rank-cuda")
        .replace(/@sha256:[0-9a-f]{64}/, "");
      writeFileSync(dockerfile(r), text);
    });
    const messages = checkDockerfiles(root, []).map((f) => f.message);
    assert.ok(
      messages.some((m) => /has no stage rank-gpu/.test(m)),
      messages.join("\n"),
    );
    assert.ok(
      messages.some((m) => /Node base must be pinned by digest/.test(m)),
      messages.join("\n"),
    );
  });

  it("reports an ignore file that lets data/ into the context", () => {
    const root = copy("ignore", (r) => {
      const path = `${dockerfile(r)}.dockerignore`;
      writeFileSync(path, readFileSync(path, "utf8").replace(/^data$/m, ""));
    });
    assert.ok(checkDockerfiles(root, []).some((f) => /does not exclude data/.test(f.message)));
  });
});
