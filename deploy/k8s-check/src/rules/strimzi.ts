/**
 * How the Strimzi resources fit together, which no CRD schema can say (the
 * field shapes are validated against Strimzi's CRDs, crds.ts): node pools and
 * topics name a rendered Kafka, a KRaft quorum of an odd number of
 * controllers, replication within the brokers, and the settings Strimzi only
 * reports at reconcile time (a topic with more replicas than brokers stays
 * NotReady; a listener on a port Strimzi keeps for itself is refused).
 */
import {
  asArray,
  asObject,
  asString,
  groupOf,
  idOf,
  type Json,
  type K8sObject,
  labelsOf,
  namespaceOf,
} from "../json.js";
import { findings, type Rule } from "./types.js";

export const STRIMZI_GROUP = "kafka.strimzi.io";
/** Ports Strimzi keeps for itself: control plane, replication, metrics, JMX. */
const RESERVED_PORTS = new Set([9090, 9091, 9404, 9999]);
const CLEANUP_POLICIES = new Set(["delete", "compact", "compact,delete", "delete,compact"]);

export function isStrimzi(r: K8sObject): boolean {
  return groupOf(r.apiVersion) === STRIMZI_GROUP;
}

export interface KafkaCluster {
  readonly kafka: K8sObject;
  readonly brokers: number;
  readonly controllers: number;
}

/** A Kafka and the broker and controller counts of its node pools. */
export function kafkaCluster(k: K8sObject, resources: readonly K8sObject[]): KafkaCluster {
  const mine = resources.filter(
    (p) =>
      p.kind === "KafkaNodePool" &&
      labelsOf(p.metadata)["strimzi.io/cluster"] === k.metadata.name &&
      namespaceOf(p) === namespaceOf(k),
  );
  const replicasWith = (role: string) =>
    mine
      .filter((p) => asArray(asObject(p.spec)?.roles).includes(role))
      .reduce((n, p) => n + intOr(asObject(p.spec)?.replicas, 0), 0);
  return { kafka: k, brokers: replicasWith("broker"), controllers: replicasWith("controller") };
}

export const strimziRule: Rule = {
  id: "strimzi",
  description:
    "Strimzi resources fit together: node pools and topics name a rendered Kafka, an odd KRaft quorum, brokers present, replication and min ISR within the brokers, no reserved or repeated listener ports, the Topic Operator on",
  check(ctx) {
    const f = findings(this.id);
    const strimzi = ctx.resources.filter(isStrimzi);
    const kafkas = strimzi.filter((r) => r.kind === "Kafka");
    const clusterOf = (r: K8sObject): K8sObject | undefined => {
      const name = labelsOf(r.metadata)["strimzi.io/cluster"];
      const found = kafkas.find((k) => k.metadata.name === name && namespaceOf(k) === namespaceOf(r));
      if (!found)
        f.error(idOf(r), `label strimzi.io/cluster="${name ?? ""}" names no Kafka in its namespace`);
      return found;
    };
    for (const p of strimzi.filter((r) => r.kind === "KafkaNodePool")) clusterOf(p);
    for (const k of kafkas) {
      const at = (message: string) => f.error(idOf(k), message);
      const spec = asObject(k.spec);
      const kafka = asObject(spec?.kafka);
      if (spec?.zookeeper !== undefined)
        at("spec.zookeeper: ZooKeeper is gone (Strimzi 0.46+); use KRaft node pools");
      if (kafka?.replicas !== undefined || kafka?.storage !== undefined)
        at("spec.kafka.replicas/storage: set them on the KafkaNodePools instead");
      if (asObject(spec?.entityOperator)?.topicOperator === undefined)
        at("spec.entityOperator.topicOperator: required, or no KafkaTopic is ever created");
      const names = new Set<string>();
      const ports = new Set<number>();
      asArray(kafka?.listeners).forEach((l, i) => {
        const name = asString(asObject(l)?.name) ?? "";
        const port = asObject(l)?.port;
        if (typeof port === "number" && RESERVED_PORTS.has(port))
          at(`spec.kafka.listeners[${i}].port: ${port} is reserved by Strimzi (9090, 9091, 9404, 9999)`);
        if (names.has(name)) at(`spec.kafka.listeners[${i}].name: "${name}" is used twice`);
        if (typeof port === "number" && ports.has(port))
          at(`spec.kafka.listeners[${i}].port: ${port} is used twice`);
        names.add(name);
        if (typeof port === "number") ports.add(port);
      });
      const cluster = kafkaCluster(k, ctx.resources);
      if (cluster.controllers === 0) at("no KafkaNodePool with the controller role (KRaft quorum)");
      else if (cluster.controllers % 2 === 0)
        at(`${cluster.controllers} controllers; a KRaft quorum wants an odd number`);
      if (cluster.brokers === 0) at("no KafkaNodePool with the broker role");
      const config = asObject(kafka?.config) ?? {};
      for (const key of [
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
      ]) {
        const value = config[key];
        if (typeof value === "number" && value > cluster.brokers)
          at(`${key}=${value} but only ${cluster.brokers} brokers`);
      }
      const minIsr = config["min.insync.replicas"];
      const rf = config["default.replication.factor"];
      if (typeof minIsr === "number" && typeof rf === "number" && minIsr > rf)
        at(`min.insync.replicas=${minIsr} exceeds default.replication.factor=${rf}`);
    }
    for (const t of strimzi.filter((r) => r.kind === "KafkaTopic")) {
      const kafka = clusterOf(t);
      const brokers = kafka ? kafkaCluster(kafka, ctx.resources).brokers : undefined;
      const at = (message: string) => f.error(idOf(t), message);
      const spec = asObject(t.spec);
      const topicName = asString(spec?.topicName) ?? String(t.metadata.name);
      if (!/^[a-zA-Z0-9._-]{1,249}$/.test(topicName))
        at(`topic name "${topicName}" is not a valid Kafka topic name`);
      const replicas = spec?.replicas;
      if (typeof replicas === "number" && brokers !== undefined && replicas > brokers)
        at(`spec.replicas=${replicas} but the cluster has ${brokers} brokers`);
      const config = asObject(spec?.config) ?? {};
      const policy = config["cleanup.policy"];
      if (policy !== undefined && !CLEANUP_POLICIES.has(String(policy)))
        at(`spec.config.cleanup.policy: "${String(policy)}" is not delete and/or compact`);
      for (const key of ["retention.ms", "delete.retention.ms", "min.compaction.lag.ms", "segment.ms"]) {
        const v = config[key];
        if (v !== undefined && (!Number.isInteger(v) || (v as number) < -1))
          at(`spec.config.${key}: an integer number of ms`);
      }
      const minIsr = config["min.insync.replicas"];
      if (minIsr !== undefined && typeof replicas === "number") {
        if (!Number.isInteger(minIsr) || (minIsr as number) < 1 || (minIsr as number) > replicas) {
          at(`spec.config.min.insync.replicas: an integer from 1 to replicas (${replicas})`);
        } else if (replicas > 1 && minIsr === replicas) {
          at(
            `spec.config.min.insync.replicas=${replicas} equals replicas: one broker down stops acks=all producers`,
          );
        }
      }
    }
    return f.list;
  },
};

function intOr(value: Json | undefined, fallback: number): number {
  return Number.isInteger(value) ? (value as number) : fallback;
}
