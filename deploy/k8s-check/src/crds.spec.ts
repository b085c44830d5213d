import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { strimziCrds, validateCustomResource } from "./crds.js";
import type { K8sObject } from "./json.js";
import { defaultRepoRoot } from "./service-config.js";

// Strimzi's CRDs, generated from io.strimzi:api by scripts/fetch-strimzi-crds.sh (run here when missing).
const crds = strimziCrds(defaultRepoRoot());
const problems = (yaml: string) =>
  validateCustomResource(crds, parse(yaml) as K8sObject) ?? ["not validated"];

const KAFKA = `
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: { name: k, namespace: ns }
spec:
  kafka:
    version: 4.1.0
    listeners:
      - { name: plain, port: 9092, type: internal, tls: false }
    config: { min.insync.replicas: 2, any.broker.setting: x }
  entityOperator: { topicOperator: {} }
`;

describe("Strimzi CRD schemas", () => {
  it("cover Kafka, KafkaNodePool, KafkaTopic and KafkaUser at v1beta2", () => {
    for (const kind of ["Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"])
      assert.ok(crds.has("kafka.strimzi.io/v1beta2", kind), kind);
  });

  it("accept a valid Kafka, with free-form broker config", () => assert.deepEqual(problems(KAFKA), []));

  it("accept a valid KafkaNodePool and KafkaTopic", () => {
    assert.deepEqual(
      problems(`
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: { name: b, labels: { strimzi.io/cluster: k } }
spec:
  replicas: 3
  roles: [broker]
  storage: { type: jbod, volumes: [{ id: 0, type: persistent-claim, size: 10Gi }] }
`),
      [],
    );
    assert.deepEqual(
      problems(`
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: { name: t, labels: { strimzi.io/cluster: k } }
spec: { partitions: 3, replicas: 3, config: { cleanup.policy: compact } }
`),
      [],
    );
  });

  const cases: Array<[string, string, RegExp]> = [
    ["a misspelt field", KAFKA.replace("tls: false", "tsl: false"), /listeners\/0 has unknown field "tsl"/],
    ["a missing required field", KAFKA.replace(", tls: false", ""), /must have required property 'tls'/],
    [
      "a listener type Strimzi does not know",
      KAFKA.replace("internal", "internall"),
      /type must be equal to one of/,
    ],
    ["a listener port below 9092", KAFKA.replace("9092", "9000"), /port must be >= 9092/],
    [
      "an unknown spec field",
      KAFKA.replace("entityOperator:", "entityOperators:"),
      /has unknown field "entityOperators"/,
    ],
    [
      "partitions as a string",
      "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata: { name: t }\nspec: { partitions: '3' }\n",
      /\/spec\/partitions must be integer/,
    ],
    [
      "a node pool role Strimzi does not know",
      "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaNodePool\nmetadata: { name: p }\nspec: { replicas: 1, roles: [voter], storage: { type: ephemeral } }\n",
      /roles\/0 must be equal to one of/,
    ],
    [
      "an API version no CRD serves",
      KAFKA.replace("v1beta2", "v1alpha1"),
      /no CRD serves kafka\.strimzi\.io\/v1alpha1 Kafka/,
    ],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`report ${name}`, () => {
      const found = problems(yaml);
      assert.ok(
        found.some((p) => expected.test(p)),
        found.join("\n"),
      );
    });
  }

  it("leave resources of other groups to kubernetes-models", () => {
    assert.equal(
      validateCustomResource(crds, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" } }),
      undefined,
    );
  });
});
