import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonObject, K8sObject } from "./json.js";
import { checkStrimzi } from "./strimzi.js";

const kafka = (spec: JsonObject = {}): K8sObject => ({
  apiVersion: "kafka.strimzi.io/v1beta2",
  kind: "Kafka",
  metadata: { name: "k", namespace: "ns" },
  spec: {
    kafka: {
      version: "4.1.0",
      listeners: [{ name: "plain", port: 9092, type: "internal", tls: false }],
      config: {},
    },
    entityOperator: { topicOperator: {} },
    ...spec,
  },
});
const pool = (name: string, roles: string[], replicas: number, cluster = "k"): K8sObject => ({
  apiVersion: "kafka.strimzi.io/v1beta2",
  kind: "KafkaNodePool",
  metadata: { name, namespace: "ns", labels: { "strimzi.io/cluster": cluster } },
  spec: {
    replicas,
    roles,
    storage: { type: "jbod", volumes: [{ id: 0, type: "persistent-claim", size: "10Gi" }] },
  },
});
const topic = (spec: JsonObject, cluster = "k"): K8sObject => ({
  apiVersion: "kafka.strimzi.io/v1beta2",
  kind: "KafkaTopic",
  metadata: { name: "events", namespace: "ns", labels: { "strimzi.io/cluster": cluster } },
  spec,
});
const healthy = () => [kafka(), pool("controller", ["controller"], 3), pool("broker", ["broker"], 3)];

describe("checkStrimzi", () => {
  it("accepts a KRaft cluster with separate controller and broker pools", () => {
    assert.deepEqual(
      checkStrimzi([
        ...healthy(),
        topic({ partitions: 3, replicas: 3, config: { "min.insync.replicas": 2 } }),
      ]),
      [],
    );
  });

  const cases: Array<[string, K8sObject[], RegExp]> = [
    [
      "a topic for an unknown cluster",
      [...healthy(), topic({ partitions: 1, replicas: 1 }, "other")],
      /names no Kafka/,
    ],
    [
      "an even number of controllers",
      [kafka(), pool("c", ["controller"], 2), pool("b", ["broker"], 3)],
      /2 controllers/,
    ],
    ["no controller pool", [kafka(), pool("b", ["broker"], 3)], /no KafkaNodePool with the controller role/],
    [
      "no Topic Operator",
      [kafka({ entityOperator: {} }), pool("c", ["controller"], 3), pool("b", ["broker"], 3)],
      /topicOperator/,
    ],
    [
      "ZooKeeper",
      [kafka({ zookeeper: { replicas: 3 } }), pool("c", ["controller"], 3), pool("b", ["broker"], 3)],
      /ZooKeeper is gone/,
    ],
    [
      "a reserved listener port",
      [
        kafka({
          kafka: {
            version: "4.1.0",
            listeners: [{ name: "plain", port: 9091, type: "internal", tls: false }],
          },
        }),
        ...healthy().slice(1),
      ],
      /port/,
    ],
    [
      "an unknown role",
      [kafka(), pool("c", ["controller", "voter"], 3), pool("b", ["broker"], 3)],
      /spec\.roles/,
    ],
    [
      "a replication factor above the brokers",
      [
        kafka({
          kafka: {
            version: "4.1.0",
            listeners: [{ name: "plain", port: 9092, type: "internal", tls: false }],
            config: { "default.replication.factor": 5 },
          },
        }),
        ...healthy().slice(1),
      ],
      /default\.replication\.factor=5 but only 3 brokers/,
    ],
    [
      "a bad cleanup policy",
      [...healthy(), topic({ partitions: 1, replicas: 1, config: { "cleanup.policy": "compacted" } })],
      /cleanup\.policy/,
    ],
    ["zero partitions", [...healthy(), topic({ partitions: 0, replicas: 1 })], /spec\.partitions/],
  ];
  for (const [name, resources, expected] of cases) {
    it(`reports ${name}`, () => {
      const problems = checkStrimzi(resources);
      assert.ok(
        problems.some((p) => expected.test(p)),
        problems.join("\n"),
      );
    });
  }
});
