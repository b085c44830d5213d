/**
 * Structural checks of the Strimzi resources we use (Kafka, KafkaNodePool,
 * KafkaTopic; kafka.strimzi.io/v1beta2, Strimzi 0.48+ in KRaft mode). The
 * Strimzi CRD schemas are large and not on npm, so instead of vendoring them
 * this checks the fields our manifests set, the cross-references between the
 * three kinds, and the replication arithmetic that Strimzi only reports at
 * reconcile time (a topic with more replicas than brokers stays NotReady).
 */
import {
  asArray,
  asObject,
  asString,
  groupOf,
  idOf,
  isObject,
  type Json,
  type JsonObject,
  type K8sObject,
  labelsOf,
  namespaceOf,
} from "./json.js";
import { parseQuantity } from "./resources.js";

export const STRIMZI_GROUP = "kafka.strimzi.io";
const KINDS = new Set(["Kafka", "KafkaNodePool", "KafkaTopic"]);
const LISTENER_TYPES = new Set(["internal", "cluster-ip", "route", "loadbalancer", "nodeport", "ingress"]);
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

/** Problems of every Strimzi resource in one render. */
export function checkStrimzi(resources: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const strimzi = resources.filter(isStrimzi);
  for (const r of strimzi) {
    if (!KINDS.has(r.kind)) problems.push(`${idOf(r)}: kind not covered by the structural checks`);
    if (r.apiVersion !== `${STRIMZI_GROUP}/v1beta2`)
      problems.push(`${idOf(r)}: apiVersion must be ${STRIMZI_GROUP}/v1beta2`);
  }
  const kafkas = strimzi.filter((r) => r.kind === "Kafka");
  for (const k of kafkas) problems.push(...checkKafka(k));
  const clusterOf = (r: K8sObject): K8sObject | undefined => {
    const name = labelsOf(r.metadata)["strimzi.io/cluster"];
    const found = kafkas.find((k) => k.metadata.name === name && namespaceOf(k) === namespaceOf(r));
    if (!found)
      problems.push(`${idOf(r)}: label strimzi.io/cluster="${name ?? ""}" names no Kafka in its namespace`);
    return found;
  };
  const pools = strimzi.filter((r) => r.kind === "KafkaNodePool");
  for (const p of pools) {
    problems.push(...checkNodePool(p));
    clusterOf(p);
  }
  const clusters = new Map<K8sObject, KafkaCluster>();
  for (const k of kafkas) {
    const mine = pools.filter(
      (p) =>
        labelsOf(p.metadata)["strimzi.io/cluster"] === k.metadata.name && namespaceOf(p) === namespaceOf(k),
    );
    const replicasWith = (role: string) =>
      mine
        .filter((p) => asArray(asObject(p.spec)?.roles).includes(role))
        .reduce((n, p) => n + intOr(asObject(p.spec)?.replicas, 0), 0);
    const cluster = { kafka: k, brokers: replicasWith("broker"), controllers: replicasWith("controller") };
    clusters.set(k, cluster);
    if (cluster.controllers === 0)
      problems.push(`${idOf(k)}: no KafkaNodePool with the controller role (KRaft quorum)`);
    else if (cluster.controllers % 2 === 0)
      problems.push(`${idOf(k)}: ${cluster.controllers} controllers; a KRaft quorum wants an odd number`);
    if (cluster.brokers === 0) problems.push(`${idOf(k)}: no KafkaNodePool with the broker role`);
    problems.push(...checkReplication(k, cluster.brokers));
  }
  for (const t of strimzi.filter((r) => r.kind === "KafkaTopic")) {
    const kafka = clusterOf(t);
    problems.push(...checkTopic(t, kafka ? clusters.get(kafka)?.brokers : undefined));
  }
  return problems;
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

function checkKafka(k: K8sObject): string[] {
  const problems: string[] = [];
  const at = (msg: string) => problems.push(`${idOf(k)}: ${msg}`);
  const spec = asObject(k.spec);
  const kafka = asObject(spec?.kafka);
  if (!kafka) return [`${idOf(k)}: spec.kafka is required`];
  if (spec?.zookeeper !== undefined)
    at("spec.zookeeper: ZooKeeper is gone (Strimzi 0.46+); use KRaft node pools");
  if (kafka.replicas !== undefined || kafka.storage !== undefined) {
    at("spec.kafka.replicas/storage: set them on the KafkaNodePools instead");
  }
  if (!/^\d+\.\d+\.\d+$/.test(asString(kafka.version) ?? ""))
    at('spec.kafka.version: expected "major.minor.patch"');
  const listeners = asArray(kafka.listeners);
  if (listeners.length === 0) at("spec.kafka.listeners: at least one listener is required");
  const names = new Set<string>();
  const ports = new Set<number>();
  listeners.forEach((l, i) => {
    const listener = asObject(l);
    const where = `spec.kafka.listeners[${i}]`;
    const name = asString(listener?.name) ?? "";
    const port = listener?.port;
    if (!/^[a-z0-9]{1,11}$/.test(name)) at(`${where}.name: lower-case letters and digits, at most 11`);
    if (
      !Number.isInteger(port) ||
      (port as number) < 9092 ||
      (port as number) > 65535 ||
      RESERVED_PORTS.has(port as number)
    ) {
      at(`${where}.port: an integer from 9092, not 9090/9091/9404/9999`);
    }
    if (!LISTENER_TYPES.has(asString(listener?.type) ?? ""))
      at(`${where}.type: one of ${[...LISTENER_TYPES].join(", ")}`);
    if (typeof listener?.tls !== "boolean") at(`${where}.tls: true or false`);
    if (names.has(name)) at(`${where}.name: "${name}" is used twice`);
    if (ports.has(port as number)) at(`${where}.port: ${String(port)} is used twice`);
    names.add(name);
    ports.add(port as number);
  });
  checkScalarMap(kafka.config, "spec.kafka.config", at);
  if (!isObject(asObject(spec?.entityOperator)?.topicOperator)) {
    at("spec.entityOperator.topicOperator: required, or no KafkaTopic is ever created");
  }
  return problems;
}

function checkNodePool(p: K8sObject): string[] {
  const problems: string[] = [];
  const at = (msg: string) => problems.push(`${idOf(p)}: ${msg}`);
  const spec = asObject(p.spec);
  if (!spec) return [`${idOf(p)}: spec is required`];
  if (!Number.isInteger(spec.replicas) || (spec.replicas as number) < 0)
    at("spec.replicas: a non-negative integer");
  const roles = asArray(spec.roles);
  if (
    roles.length === 0 ||
    roles.some((r) => r !== "controller" && r !== "broker") ||
    new Set(roles).size !== roles.length
  ) {
    at("spec.roles: controller and/or broker");
  }
  const storage = asObject(spec.storage);
  const type = asString(storage?.type);
  if (type === "jbod") {
    const volumes = asArray(storage?.volumes);
    if (volumes.length === 0) at("spec.storage.volumes: a jbod needs at least one volume");
    const ids = new Set<Json>();
    volumes.forEach((v, i) => {
      const volume = asObject(v);
      if (!Number.isInteger(volume?.id) || ids.has(volume?.id as Json))
        at(`spec.storage.volumes[${i}].id: a unique integer`);
      ids.add(volume?.id as Json);
      checkVolume(volume, `spec.storage.volumes[${i}]`, at);
    });
  } else {
    checkVolume(storage, "spec.storage", at);
  }
  const resources = asObject(spec.resources);
  for (const kind of ["requests", "limits"]) {
    for (const [name, q] of Object.entries(asObject(resources?.[kind]) ?? {})) {
      if (parseQuantity(q as string | number) === undefined)
        at(`spec.resources.${kind}.${name}: not a quantity`);
    }
  }
  return problems;
}

function checkVolume(volume: JsonObject | undefined, where: string, at: (m: string) => void): void {
  const type = asString(volume?.type);
  if (type === "persistent-claim") {
    if (parseQuantity(asString(volume?.size)) === undefined) at(`${where}.size: a quantity such as 100Gi`);
  } else if (type !== "ephemeral") {
    at(`${where}.type: persistent-claim or ephemeral (or jbod at the top)`);
  }
}

function checkReplication(k: K8sObject, brokers: number): string[] {
  const config = asObject(asObject(asObject(k.spec)?.kafka)?.config) ?? {};
  const problems: string[] = [];
  for (const key of [
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
  ]) {
    const value = config[key];
    if (typeof value === "number" && value > brokers)
      problems.push(`${idOf(k)}: ${key}=${value} but only ${brokers} brokers`);
  }
  const minIsr = config["min.insync.replicas"];
  const rf = config["default.replication.factor"];
  if (typeof minIsr === "number" && typeof rf === "number" && minIsr > rf) {
    problems.push(`${idOf(k)}: min.insync.replicas=${minIsr} exceeds default.replication.factor=${rf}`);
  }
  return problems;
}

function checkTopic(t: K8sObject, brokers: number | undefined): string[] {
  const problems: string[] = [];
  const at = (msg: string) => problems.push(`${idOf(t)}: ${msg}`);
  const spec = asObject(t.spec);
  const topicName = asString(spec?.topicName) ?? String(t.metadata.name);
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(topicName))
    at(`topic name "${topicName}" is not a valid Kafka topic name`);
  const partitions = spec?.partitions;
  const replicas = spec?.replicas;
  if (!Number.isInteger(partitions) || (partitions as number) < 1) at("spec.partitions: an integer >= 1");
  if (!Number.isInteger(replicas) || (replicas as number) < 1) at("spec.replicas: an integer >= 1");
  else if (brokers !== undefined && (replicas as number) > brokers)
    at(`spec.replicas=${String(replicas)} but the cluster has ${brokers} brokers`);
  const config = asObject(spec?.config) ?? {};
  checkScalarMap(spec?.config, "spec.config", at);
  const policy = config["cleanup.policy"];
  if (policy !== undefined && !CLEANUP_POLICIES.has(String(policy)))
    at(`spec.config.cleanup.policy: "${String(policy)}" is not delete and/or compact`);
  for (const key of ["retention.ms", "delete.retention.ms", "min.compaction.lag.ms", "segment.ms"]) {
    const v = config[key];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < -1))
      at(`spec.config.${key}: an integer number of ms`);
  }
  const minIsr = config["min.insync.replicas"];
  if (minIsr !== undefined && Number.isInteger(replicas)) {
    const r = replicas as number;
    if (!Number.isInteger(minIsr) || (minIsr as number) < 1 || (minIsr as number) > r) {
      at(`spec.config.min.insync.replicas: an integer from 1 to replicas (${r})`);
    } else if (r > 1 && minIsr === r) {
      at(`spec.config.min.insync.replicas=${r} equals replicas: one broker down stops acks=all producers`);
    }
  }
  return problems;
}

function checkScalarMap(value: Json | undefined, where: string, at: (m: string) => void): void {
  if (value === undefined) return;
  if (!isObject(value)) {
    at(`${where}: a mapping`);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (v === null || typeof v === "object") at(`${where}.${k}: a string, number or boolean`);
  }
}

function intOr(value: Json | undefined, fallback: number): number {
  return Number.isInteger(value) ? (value as number) : fallback;
}
