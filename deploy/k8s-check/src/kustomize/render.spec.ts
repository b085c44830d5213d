import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { idOf, type JsonObject, type K8sObject } from "../json.js";
import { defaultRepoRoot } from "../service-config.js";
import { renderKustomization } from "./render.js";

const tmp = mkdtempSync(join(tmpdir(), "k8s-check-render-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function write(root: string, files: Record<string, string>): string {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** A base and an overlay that use every feature the renderer supports. */
const FIXTURE: Record<string, string> = {
  "base/kustomization.yaml": `
labels:
  - pairs: {app.kubernetes.io/part-of: t}
resources: [app.yaml]
configMapGenerator:
  - name: app-config
    envs: [app.env]
  - name: fixed
    literals: [K=v]
    options: {disableNameSuffixHash: true}
`,
  "base/app.env": "# comment\nA=1\nB=x<y&z\n",
  "base/app.yaml": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      initContainers: [{name: wait, image: "recsys/app:1"}]
      containers:
        - name: app
          image: recsys/app:1
          envFrom: [{configMapRef: {name: app-config}}, {configMapRef: {name: fixed}}]
          env:
            - {name: FROM_KEY, valueFrom: {configMapKeyRef: {name: app-config, key: A}}}
            - {name: X, value: "1"}
      volumes: [{name: c, configMap: {name: app-config}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: job}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: "recsys/app:1", envFrom: [{configMapRef: {name: app-config}}]}]
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: {name: events, labels: {strimzi.io/cluster: k}}
spec: {partitions: 3, replicas: 3, config: {min.insync.replicas: 2}}
`,
  "overlay/kustomization.yaml": `
namespace: ns1
resources: [../base, ns.yaml]
labels:
  - pairs: {env: dev}
images:
  - {name: recsys/app, newTag: "2"}
configMapGenerator:
  - name: app-config
    behavior: merge
    literals: [A=2, C=3]
patches:
  - path: app-patch.yaml
  - target: {kind: KafkaTopic}
    patch: |-
      - {op: replace, path: /spec/replicas, value: 1}
      - {op: replace, path: /spec/config/min.insync.replicas, value: 1}
`,
  "overlay/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns1}\n",
  "overlay/app-patch.yaml": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    spec:
      containers:
        - name: app
          env: [{name: NEW, value: "2"}]
          resources: {limits: {cpu: "1"}}
`,
};

const root = write(join(tmp, "fixture"), FIXTURE);

function byId(resources: readonly K8sObject[]): Map<string, K8sObject> {
  return new Map(resources.map((r) => [idOf(r), r]));
}

describe("renderKustomization", () => {
  const { resources, lint } = renderKustomization(join(root, "overlay"));
  const map = byId(resources);

  it("renders every resource once, in the overlay's namespace", () => {
    assert.deepEqual([...map.keys()].sort(), [
      "ConfigMap/ns1/app-config-27fdk92mfg",
      "ConfigMap/ns1/fixed",
      "CronJob/ns1/job",
      "Deployment/ns1/app",
      "KafkaTopic/ns1/events",
      "Namespace/ns1",
    ]);
    assert.deepEqual(lint, []);
  });

  it("merges generated data and hashes the final data", () => {
    assert.deepEqual(map.get("ConfigMap/ns1/app-config-27fdk92mfg")?.data, { A: "2", B: "x<y&z", C: "3" });
  });

  it("renames every reference to a hashed ConfigMap, and only those", () => {
    const deployment = map.get("Deployment/ns1/app") as K8sObject;
    const spec = ((deployment.spec as JsonObject).template as JsonObject).spec as JsonObject;
    const app = (spec.containers as JsonObject[])[0] as JsonObject;
    assert.deepEqual(app.envFrom, [
      { configMapRef: { name: "app-config-27fdk92mfg" } },
      { configMapRef: { name: "fixed" } },
    ]);
    assert.deepEqual(app.env, [
      { name: "NEW", value: "2" },
      { name: "FROM_KEY", valueFrom: { configMapKeyRef: { name: "app-config-27fdk92mfg", key: "A" } } },
      { name: "X", value: "1" },
    ]);
    assert.deepEqual(spec.volumes, [{ name: "c", configMap: { name: "app-config-27fdk92mfg" } }]);
    assert.match(JSON.stringify(map.get("CronJob/ns1/job")), /app-config-27fdk92mfg/);
  });

  it("applies labels to metadata only, base labels then overlay labels", () => {
    const d = map.get("Deployment/ns1/app") as K8sObject;
    assert.deepEqual(d.metadata.labels, { "app.kubernetes.io/part-of": "t", env: "dev" });
    assert.deepEqual(((d.spec as JsonObject).template as JsonObject).metadata, { labels: { app: "app" } });
    assert.deepEqual(map.get("Namespace/ns1")?.metadata, { name: "ns1", labels: { env: "dev" } });
  });

  it("applies images to containers and init containers of every workload", () => {
    const text = JSON.stringify([map.get("Deployment/ns1/app"), map.get("CronJob/ns1/job")]);
    assert.equal(text.match(/recsys\/app:2/g)?.length, 3);
    assert.doesNotMatch(text, /recsys\/app:1/);
  });

  it("applies JSON 6902 patches to every target", () => {
    assert.deepEqual(map.get("KafkaTopic/ns1/events")?.spec, {
      partitions: 3,
      replicas: 1,
      config: { "min.insync.replicas": 1 },
    });
  });

  const errors: Array<[string, Record<string, string>, RegExp]> = [
    [
      "an unsupported field",
      { "kustomization.yaml": "commonLabels: {a: b}\nresources: []\n" },
      /"commonLabels" is not supported/,
    ],
    [
      "a file outside the directory",
      { "kustomization.yaml": "resources: [../outside.yaml]\n" },
      /does not exist|outside/,
    ],
    [
      "a patch that matches nothing",
      {
        "kustomization.yaml":
          "resources: [ns.yaml]\npatches:\n  - target: {kind: Deployment}\n    patch: '[{op: remove, path: /x}]'\n",
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
      },
      /matches no resource/,
    ],
    [
      "a resource defined twice",
      {
        "kustomization.yaml": "resources: [a.yaml, a2.yaml]\n",
        "a.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        "a2.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
      },
      /defined twice/,
    ],
    [
      "a remote resource",
      { "kustomization.yaml": "resources: [https://github.com/x/y//k8s?ref=v1]\n" },
      /remote resource/,
    ],
  ];
  errors.forEach(([name, files, expected], i) => {
    it(`refuses ${name}`, () => {
      const dir = write(join(tmp, `error-${i}`, "k"), files);
      writeFileSync(
        join(tmp, `error-${i}`, "outside.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: o}\n",
      );
      assert.throws(() => renderKustomization(dir), expected);
    });
  });
});

/** `kubectl kustomize`, when kubectl is installed (it is not on a fresh CI machine). */
function kubectlKustomize(dir: string): K8sObject[] | undefined {
  const result = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
  if (result.error || result.status !== 0) return undefined;
  return parseAllDocuments(result.stdout).map((d) => d.toJS() as K8sObject);
}

const hasKubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;

describe("same output as kubectl kustomize", {
  skip: hasKubectl ? false : "kubectl is not installed",
}, () => {
  const repo = defaultRepoRoot();
  const dirs: Array<[string, string]> = [
    ["the fixture overlay", join(root, "overlay")],
    ["the fixture base", join(root, "base")],
    ["k8s/base", join(repo, "k8s", "base")],
    ["k8s/overlays/dev", join(repo, "k8s", "overlays", "dev")],
    ["k8s/overlays/prod", join(repo, "k8s", "overlays", "prod")],
    ["k8s/overlays/gpu", join(repo, "k8s", "overlays", "gpu")],
  ];
  for (const [name, dir] of dirs) {
    it(name, () => {
      const expected = kubectlKustomize(dir);
      assert.ok(expected, `kubectl kustomize ${dir} failed`);
      const ours = byId(renderKustomization(dir).resources);
      const theirs = byId(expected);
      assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
      for (const [id, r] of theirs) assert.deepEqual(ours.get(id), r, id);
    });
  }
});
