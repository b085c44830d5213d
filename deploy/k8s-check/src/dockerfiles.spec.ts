import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkDockerfile, parseDockerfile } from "./dockerfiles.js";

describe("checkDockerfile", () => {
  it("accepts pinned stages, stage references and a numeric USER", () => {
    const text = [
      "# syntax=docker/dockerfile:1",
      "FROM node:20.20.2-bookworm-slim AS build",
      "RUN echo a \\",
      "  # a comment inside a continuation",
      "  && echo b",
      "FROM build AS test",
      "FROM --platform=linux/amd64 nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04",
      "COPY --from=build /app ./",
      "USER 10001:10001",
    ].join("\n");
    assert.deepEqual(checkDockerfile(text), []);
    assert.match(parseDockerfile(text).find((i) => i.keyword === "RUN")?.args ?? "", /^echo a\s+&& echo b$/);
  });

  const cases: Array<[string, string, RegExp]> = [
    ["an untagged base", "FROM node\nUSER 1", /line 1: FROM node has no tag/],
    ["a latest base", "FROM node:latest\nUSER 1", /latest tag/],
    ["a variable base", "ARG V\nFROM node:$V\nUSER 1", /variable base image/],
    ["no USER in the final stage", "FROM node:20 AS a\nUSER 1\nFROM node:20", /sets no USER/],
    ["a named USER", "FROM node:20\nUSER node", /numeric, non-zero uid/],
    ["USER 0", "FROM node:20\nUSER 0:0", /numeric, non-zero uid/],
  ];
  for (const [name, text, expected] of cases) {
    it(`reports ${name}`, () =>
      assert.ok(
        checkDockerfile(text).some((p) => expected.test(p)),
        checkDockerfile(text).join("\n"),
      ));
  }
});
