import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonObject } from "../json.js";
import { applyImages, type ImageOverride, overrideImage, parseImage } from "./images.js";

describe("parseImage", () => {
  const cases: Array<[string, ReturnType<typeof parseImage>]> = [
    ["recsys/rank:0.1.0", { name: "recsys/rank", tag: "0.1.0", digest: undefined }],
    ["recsys/rank", { name: "recsys/rank", digest: undefined }],
    ["registry:5000/recsys/rank", { name: "registry:5000/recsys/rank", digest: undefined }],
    ["registry:5000/recsys/rank:1", { name: "registry:5000/recsys/rank", tag: "1", digest: undefined }],
    ["redis@sha256:abc", { name: "redis", digest: "sha256:abc" }],
    ["redis:7@sha256:abc", { name: "redis", tag: "7", digest: "sha256:abc" }],
  ];
  for (const [image, expected] of cases) it(image, () => assert.deepEqual(parseImage(image), expected));
});

describe("overrideImage (kustomize images:)", () => {
  const cases: Array<[string, ImageOverride, string]> = [
    ["recsys/rank:0.1.0", { name: "recsys/rank", newTag: "0.2.0" }, "recsys/rank:0.2.0"],
    ["recsys/rank:0.1.0", { name: "recsys/rank", newName: "recsys/rank-gpu" }, "recsys/rank-gpu:0.1.0"],
    ["recsys/rank:0.1.0", { name: "recsys/rank", digest: "sha256:d" }, "recsys/rank@sha256:d"],
    ["recsys/rank:0.1.0@sha256:a", { name: "recsys/rank", newTag: "2" }, "recsys/rank:2"],
    ["recsys/rank:0.1.0", { name: "recsys/rank", newTag: "2", digest: "sha256:d" }, "recsys/rank:2@sha256:d"],
    ["recsys/ranker:0.1.0", { name: "recsys/rank", newTag: "2" }, "recsys/ranker:0.1.0"],
  ];
  for (const [image, o, expected] of cases) {
    it(`${image} with ${JSON.stringify(o)}`, () => assert.equal(overrideImage(image, o), expected));
  }

  it("rewrites containers and initContainers anywhere, including CronJob templates", () => {
    const cronJob: JsonObject = {
      spec: {
        jobTemplate: {
          spec: {
            template: {
              spec: {
                initContainers: [{ name: "i", image: "recsys/rank:1" }],
                containers: [{ name: "c", image: "recsys/rank:1" }],
              },
            },
          },
        },
      },
    };
    applyImages(cronJob, [{ name: "recsys/rank", newTag: "2" }]);
    assert.match(JSON.stringify(cronJob), /"i","image":"recsys\/rank:2".*"c","image":"recsys\/rank:2"/);
  });
});
