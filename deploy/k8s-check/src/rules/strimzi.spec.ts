import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import type { K8sObject } from "../json.js";
import { podTemplates } from "../resources.js";
import { strimziRule } from "./strimzi.js";

/** Resources as YAML, the way the manifests write them. */
const yaml = (text: string): K8sObject[] => parseAllDocuments(text).map((d) => d.toJS() as K8sObject);
const kafka = (kafkaSpec = "", spec = "  entityOperator: { topicOperator: {} }") => `
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: { name: k, namespace: ns }
spec:
  kafka:
    version: 4.1.0
    listeners: [{ name: plain, port: 9092, type: internal, tls: false }]
${kafkaSpec}
${spec}
`;
const pool = (name: string, roles: string, replicas: number, cluster = "k") => `
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: { name: ${name}, namespace: ns, labels: { strimzi.io/cluster: ${cluster} } }
spec: { replicas: ${replicas}, roles: ${roles}, storage: { type: ephemeral } }
`;
const topic = (spec: string, cluster = "k") => `
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: { name: events, namespace: ns, labels: { strimzi.io/cluster: ${cluster} } }
spec: ${spec}
`;
const pools = [pool("controller", "[controller]", 3), pool("broker", "[broker]", 3)].join("---");
const run = (text: string) => {
  const resources = yaml(text);
  const ctx = { overlay: "test", resources, templates: podTemplates(resources), services: new Map() };
  return strimziRule.check(ctx).map((f) => `${f.resource}: ${f.message}`);
};

describe("rule strimzi", () => {
  it("accepts a KRaft cluster with separate controller and broker pools", () => {
    assert.deepEqual(
      run(
        [kafka(), pools, topic("{ partitions: 3, replicas: 3, config: { min.insync.replicas: 2 } }")].join(
          "---",
        ),
      ),
      [],
    );
  });

  const cases: Array<[string, string, RegExp]> = [
    [
      "a topic for an unknown cluster",
      [kafka(), pools, topic("{ partitions: 1, replicas: 1 }", "other")].join("---"),
      /names no Kafka/,
    ],
    [
      "an even number of controllers",
      [kafka(), pool("c", "[controller]", 2), pool("b", "[broker]", 3)].join("---"),
      /2 controllers/,
    ],
    [
      "no controller pool",
      [kafka(), pool("b", "[broker]", 3)].join("---"),
      /no KafkaNodePool with the controller role/,
    ],
    ["no Topic Operator", [kafka("", "  entityOperator: {}"), pools].join("---"), /topicOperator/],
    [
      "ZooKeeper",
      [kafka("", "  zookeeper: { replicas: 3 }\n  entityOperator: { topicOperator: {} }"), pools].join("---"),
      /ZooKeeper is gone/,
    ],
    [
      "a listener port Strimzi reserves",
      [kafka().replace("port: 9092", "port: 9404"), pools].join("---"),
      /9404 is reserved by Strimzi/,
    ],
    [
      "a replication factor above the brokers",
      [kafka("    config: { default.replication.factor: 5 }"), pools].join("---"),
      /default\.replication\.factor=5 but only 3 brokers/,
    ],
    [
      "a topic with more replicas than brokers",
      [kafka(), pools, topic("{ partitions: 3, replicas: 4 }")].join("---"),
      /spec\.replicas=4 but the cluster has 3 brokers/,
    ],
    [
      "a bad cleanup policy",
      [kafka(), pools, topic("{ partitions: 1, replicas: 1, config: { cleanup.policy: compacted } }")].join(
        "---",
      ),
      /cleanup\.policy/,
    ],
    [
      "min.insync.replicas equal to replicas",
      [kafka(), pools, topic("{ partitions: 1, replicas: 3, config: { min.insync.replicas: 3 } }")].join(
        "---",
      ),
      /equals replicas/,
    ],
  ];
  for (const [name, text, expected] of cases) {
    it(`reports ${name}`, () => {
      const problems = run(text);
      assert.ok(
        problems.some((p) => expected.test(p)),
        problems.join("\n"),
      );
    });
  }
});
