import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonObject } from "../json.js";
import { applyJsonPatch, strategicMerge, toJsonPatch } from "./patches.js";

/** A Deployment with one container whose env is `env`. */
function deployment(container: JsonObject, pod: JsonObject = {}): JsonObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "d" },
    spec: { template: { spec: { ...pod, containers: [{ name: "c", ...container }] } } },
  };
}

function container(obj: JsonObject): JsonObject {
  const spec = (obj.spec as JsonObject).template as JsonObject;
  return ((spec.spec as JsonObject).containers as JsonObject[])[0] as JsonObject;
}

const env = (...pairs: Array<[string, string]>) => pairs.map(([name, value]) => ({ name, value }));

describe("strategicMerge on workloads", () => {
  // Each expectation is what `kubectl kustomize` (kustomize v5.5.0) produced for the same patch.
  const listCases: Array<[string, JsonObject[], JsonObject[], Array<[string, string]>]> = [
    [
      "patch elements first, then the target's others",
      env(["A", "a"], ["X", "x"]),
      env(["X", "x2"], ["Y", "y"]),
      [
        ["X", "x2"],
        ["Y", "y"],
        ["A", "a"],
      ],
    ],
    [
      "new elements only",
      env(["A", "a"], ["B", "b"]),
      env(["C", "c"], ["D", "d"]),
      [
        ["C", "c"],
        ["D", "d"],
        ["A", "a"],
        ["B", "b"],
      ],
    ],
    [
      "the patch's order wins",
      env(["A", "a"], ["B", "b"], ["C", "c"]),
      env(["C", "c2"], ["A", "a2"]),
      [
        ["C", "c2"],
        ["A", "a2"],
        ["B", "b"],
      ],
    ],
    [
      "mixed",
      env(["A", "a"], ["B", "b"], ["C", "c"]),
      env(["D", "d"], ["B", "b2"]),
      [
        ["D", "d"],
        ["B", "b2"],
        ["A", "a"],
        ["C", "c"],
      ],
    ],
  ];
  for (const [name, target, patch, expected] of listCases) {
    it(`env merges by name: ${name}`, () => {
      const merged = strategicMerge(deployment({ env: target }), deployment({ env: patch }), "Deployment");
      assert.deepEqual(
        (container(merged).env as JsonObject[]).map((e) => [e.name, e.value]),
        expected,
      );
    });
  }

  it("merges maps, replaces lists without a merge key, deletes nulls", () => {
    const target = deployment(
      {
        args: ["x", "y"],
        ports: [
          { name: "grpc", containerPort: 1 },
          { name: "m", containerPort: 2 },
        ],
        envFrom: [{ configMapRef: { name: "a" } }],
        resources: { requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "2", memory: "1Gi" } },
      },
      {
        tolerations: [{ key: "a", operator: "Exists" }],
        topologySpreadConstraints: [{ topologyKey: "zone", maxSkew: 1, whenUnsatisfiable: "ScheduleAnyway" }],
        nodeSelector: { a: "1" },
      },
    );
    const patch = deployment(
      {
        args: ["z"],
        ports: [{ name: "grpc2", containerPort: 1 }],
        envFrom: [{ configMapRef: { name: "b" } }],
        resources: { limits: { "nvidia.com/gpu": 1, memory: null } },
      },
      {
        tolerations: [{ key: "b", operator: "Exists" }],
        topologySpreadConstraints: [{ topologyKey: "host", maxSkew: 1, whenUnsatisfiable: "DoNotSchedule" }],
        nodeSelector: { b: "2" },
      },
    );
    const merged = strategicMerge(target, patch, "Deployment");
    const pod = ((merged.spec as JsonObject).template as JsonObject).spec as JsonObject;
    assert.deepEqual(container(merged), {
      name: "c",
      args: ["z"],
      ports: [
        { name: "grpc2", containerPort: 1 },
        { name: "m", containerPort: 2 },
      ],
      envFrom: [{ configMapRef: { name: "b" } }],
      resources: { requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "2", "nvidia.com/gpu": 1 } },
    });
    assert.deepEqual(pod.tolerations, [{ key: "b", operator: "Exists" }]);
    assert.deepEqual(
      (pod.topologySpreadConstraints as JsonObject[]).map((t) => t.topologyKey),
      ["host", "zone"],
    );
    assert.deepEqual(pod.nodeSelector, { a: "1", b: "2" });
  });

  it("does not modify its inputs", () => {
    const target = deployment({ env: env(["A", "a"]) });
    const before = structuredClone(target);
    strategicMerge(target, deployment({ env: env(["A", "b"]) }), "Deployment");
    assert.deepEqual(target, before);
  });

  it("refuses directives and elements without their merge key", () => {
    assert.throws(
      () => strategicMerge(deployment({}), deployment({ $patch: "delete" }), "Deployment"),
      /directive "\$patch"/,
    );
    assert.throws(
      () =>
        strategicMerge(
          deployment({ env: env(["A", "a"]) }),
          deployment({ env: [{ value: "x" }] }),
          "Deployment",
        ),
      /lacks its merge key "name"/,
    );
  });
});

describe("strategicMerge on other kinds", () => {
  const hpa: JsonObject = {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: { name: "h" },
    spec: { minReplicas: 2, maxReplicas: 10, metrics: [] },
  };

  it("merges scalars and maps", () => {
    const merged = strategicMerge(hpa, { spec: { minReplicas: 1 } }, "HorizontalPodAutoscaler");
    assert.deepEqual(merged.spec, { minReplicas: 1, maxReplicas: 10, metrics: [] });
  });

  it("refuses lists, whose meaning depends on a schema", () => {
    assert.throws(
      () => strategicMerge(hpa, { spec: { metrics: [{ type: "Resource" }] } }, "HorizontalPodAutoscaler"),
      /use a JSON 6902 patch/,
    );
  });
});

describe("applyJsonPatch", () => {
  const doc: JsonObject = { spec: { replicas: 3, config: { "min.insync.replicas": 2 }, list: ["a", "b"] } };

  it("replaces, adds, removes, moves, copies and tests", () => {
    const out = applyJsonPatch(
      doc,
      toJsonPatch(
        [
          { op: "test", path: "/spec/replicas", value: 3 },
          { op: "replace", path: "/spec/replicas", value: 1 },
          { op: "replace", path: "/spec/config/min.insync.replicas", value: 1 },
          { op: "add", path: "/spec/list/1", value: "x" },
          { op: "add", path: "/spec/list/-", value: "z" },
          { op: "remove", path: "/spec/list/0" },
          { op: "copy", from: "/spec/replicas", path: "/spec/copied" },
          { op: "move", from: "/spec/copied", path: "/spec/moved" },
          { op: "add", path: "/spec/a~1b", value: true },
        ],
        "test",
      ),
    );
    assert.deepEqual(out, {
      spec: {
        replicas: 1,
        config: { "min.insync.replicas": 1 },
        list: ["x", "b", "z"],
        moved: 1,
        "a/b": true,
      },
    });
    assert.equal((doc.spec as JsonObject).replicas, 3, "input untouched");
  });

  const failures: Array<[string, JsonObject]> = [
    ["replace of a missing key", { op: "replace", path: "/spec/nope", value: 1 }],
    ["remove of a missing key", { op: "remove", path: "/spec/nope" }],
    ["add under a missing parent", { op: "add", path: "/nope/x", value: 1 }],
    ["an index past the end", { op: "add", path: "/spec/list/5", value: 1 }],
    ["a failed test", { op: "test", path: "/spec/replicas", value: 4 }],
  ];
  for (const [name, op] of failures) {
    it(`fails on ${name}`, () => assert.throws(() => applyJsonPatch(doc, toJsonPatch([op], "test"))));
  }

  it("checks the shape of operations", () => {
    assert.throws(() => toJsonPatch({ op: "add" }, "p"), /list of operations/);
    assert.throws(() => toJsonPatch([{ op: "merge", path: "/a" }], "p"), /needs "op"/);
    assert.throws(() => toJsonPatch([{ op: "replace", path: "/a" }], "p"), /needs "value"/);
  });
});
