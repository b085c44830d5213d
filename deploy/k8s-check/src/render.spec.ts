import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { findRenderer, NO_RENDERER, parseRender, RenderError, renderKustomization } from "./render.js";
import { defaultRepoRoot } from "./service-config.js";

const repo = defaultRepoRoot();
const overlay = (name: string) => join(repo, "k8s", "overlays", name);

describe("rendering with the real kustomize", () => {
  const tmp = mkdtempSync(join(tmpdir(), "k8s-check-render-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("finds kubectl on PATH and renders every overlay into objects", () => {
    assert.match(findRenderer().tool, /kubectl$/);
    for (const name of ["dev", "prod", "gpu"]) {
      const { resources } = renderKustomization(overlay(name));
      assert.ok(resources.length > 40, name);
      assert.ok(resources.some((r) => r.kind === "Kafka"));
      // configMapGenerator's hash suffix, references renamed by kustomize
      assert.ok(
        resources.some(
          (r) => r.kind === "ConfigMap" && /^recsys-common-[a-z0-9]{10}$/.test(String(r.metadata.name)),
        ),
      );
    }
  });

  it("falls back to a standalone kustomize (`kustomize build DIR`) without kubectl", () => {
    const kubectl = findRenderer().tool;
    const shim = join(tmp, "kustomize");
    writeFileSync(shim, `#!/bin/sh\n[ "$1" = build ] || exit 64\nexec ${kubectl} kustomize "$2"\n`);
    chmodSync(shim, 0o755);
    const renderer = findRenderer({ PATH: tmp });
    assert.equal(renderer.tool, shim);
    assert.ok(renderKustomization(overlay("dev"), renderer).resources.length > 40);
  });

  it("says how to get kubectl when neither tool is on PATH", () => {
    assert.throws(
      () => findRenderer({ PATH: `${tmp}-missing` }),
      (e: unknown) => e instanceof RenderError && e.message === NO_RENDERER,
    );
    assert.match(NO_RENDERER, /Debian has no kustomize package/);
    const cli = fileURLToPath(new URL("./cli.js", import.meta.url));
    const result = spawnSync(process.execPath, [cli], {
      encoding: "utf8",
      cwd: repo,
      env: { PATH: `${tmp}-missing` },
    });
    assert.equal(result.status, 2, result.stdout);
    assert.match(result.stderr, /neither kubectl nor kustomize is on PATH/);
  });

  it("reports kustomize's own error for a broken kustomization", () => {
    const dir = join(tmp, "broken");
    rmSync(dir, { recursive: true, force: true });
    spawnSync("mkdir", ["-p", dir]);
    writeFileSync(join(dir, "kustomization.yaml"), "resources: [missing.yaml]\n");
    assert.throws(() => renderKustomization(dir), /missing\.yaml/);
  });

  it("refuses output that is not Kubernetes objects", () => {
    assert.throws(() => parseRender("a: 1\n", "x"), /document 1 is not a Kubernetes object/);
  });
});
