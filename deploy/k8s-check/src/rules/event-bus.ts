/**
 * The event bus and the user-state store as the services reach them in the
 * cluster: the same addresses, topics and NetworkPolicy labels as the Kafka
 * and Redis resources rendered beside them. Without these, a service falls
 * back to its single-machine defaults: the embedded bus writes under the
 * image's read-only root, and an in-memory user state differs per replica.
 */
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IService } from "kubernetes-models/v1/Service";
import { asArray, asObject, asString, type K8sObject, namespaceOf } from "../json.js";
import { type LabelSelector, mapSelectorMatches, type PodTemplate, selectorMatches } from "../resources.js";
import { effectiveEnv, serviceContainers } from "./funnel-config.js";
import { CO_PARTITIONED, DESIGN_TOPICS } from "./kafka.js";
import { egressAllows, sourcesFor } from "./networking.js";
import { kafkaCluster } from "./strimzi.js";
import { findings, type Rule, type RuleContext } from "./types.js";

/** "<name>[.<namespace>[.svc[.cluster.local]]]" -> name and namespace. */
export function splitHost(
  host: string,
  defaultNamespace: string | undefined,
): { name: string; namespace?: string } | undefined {
  const [name, ns = defaultNamespace, ...rest] = host.replace(/\.$/, "").split(".");
  if (!name || !["", "svc", "svc.cluster.local"].includes(rest.join("."))) return undefined;
  return { name, namespace: ns };
}

/** Is `dir` under a mount of the container that is writable? */
function writable(c: IContainer, dir: string): boolean {
  return (c.volumeMounts ?? []).some(
    (m) =>
      m.readOnly !== true && (dir === m.mountPath || dir.startsWith(`${m.mountPath.replace(/\/$/, "")}/`)),
  );
}

export const eventBusRule: Rule = {
  id: "event-bus",
  description:
    "Services that use the bus point RECSYS_KAFKA_BROKERS at the rendered Kafka's bootstrap listener (whose networkPolicyPeers admit them, and which their egress policies, if any, open along with DNS), with topics, partitions and replication that match the KafkaTopics, and a spill dir on a writable volume; RECSYS_REDIS_URL names the rendered Redis Service, whose NetworkPolicy admits them",
  check(ctx) {
    const f = findings(this.id);
    const policies = ctx.resources.filter((r) => r.kind === "NetworkPolicy");
    for (const { t, c, service } of serviceContainers(ctx)) {
      const env = effectiveEnv(ctx, t, c);
      const where = `container "${c.name}"`;
      if (service.keys.has("RECSYS_KAFKA_BROKERS")) {
        const brokers = (env.get("RECSYS_KAFKA_BROKERS")?.value ?? "")
          .split(",")
          .map((b) => b.trim())
          .filter(Boolean);
        if (brokers.length === 0) {
          f.error(
            t.id,
            `${where}: RECSYS_KAFKA_BROKERS is empty, so the embedded bus would write under the read-only root`,
          );
        }
        for (const broker of brokers) {
          checkBroker(ctx.resources, t, broker, env, (m) => f.error(t.id, `${where}: ${m}`));
          const port = Number(/:(\d+)$/.exec(broker)?.[1]);
          if (Number.isInteger(port) && !egressAllows(policies, t, port))
            f.error(t.id, `${where}: its egress NetworkPolicies do not open port ${port} (broker ${broker})`);
        }
        if (brokers.length > 0 && !egressAllows(policies, t, 53, "UDP"))
          f.error(t.id, `${where}: its egress NetworkPolicies do not open DNS (UDP 53): no broker resolves`);
        const spill = env.get("RECSYS_SPILL_DIR")?.value ?? "";
        if (!spill.startsWith("/") || !writable(c, spill)) {
          f.error(t.id, `${where}: RECSYS_SPILL_DIR="${spill}" is not under a writable volume mount`);
        }
      }
      if (service.keys.has("RECSYS_REDIS_URL")) {
        const url = env.get("RECSYS_REDIS_URL")?.value ?? "";
        const m = /^rediss?:\/\/(?:[^@/]*@)?([^:/]+):(\d+)\/?\d*$/.exec(url);
        if (!m) {
          f.error(
            t.id,
            `${where}: RECSYS_REDIS_URL="${url}" is not redis://host:port (in-memory user state differs per replica)`,
          );
          continue;
        }
        checkReachable(ctx, policies, t, "RECSYS_REDIS_URL", m[1] as string, Number(m[2]), (msg) =>
          f.error(t.id, `${where}: ${msg}`),
        );
      }
    }
    return f.list;
  },
};

function checkBroker(
  resources: readonly K8sObject[],
  client: PodTemplate,
  broker: string,
  env: ReturnType<typeof effectiveEnv>,
  error: (m: string) => void,
): void {
  const m = /^([^:]+):(\d+)$/.exec(broker);
  const host = m ? splitHost(m[1] as string, client.namespace) : undefined;
  const cluster = host?.name.endsWith("-kafka-bootstrap")
    ? host.name.slice(0, -"-kafka-bootstrap".length)
    : undefined;
  const kafka = resources.find(
    (r) => r.kind === "Kafka" && r.metadata.name === cluster && namespaceOf(r) === host?.namespace,
  );
  if (!m || !kafka) {
    error(
      `broker "${broker}" is not the bootstrap Service of a rendered Kafka (<cluster>-kafka-bootstrap.<namespace>...:<port>)`,
    );
    return;
  }
  const port = Number(m[2]);
  const listener = asArray(asObject(asObject(kafka.spec)?.kafka)?.listeners)
    .map((l) => asObject(l))
    .find((l) => l?.port === port);
  if (!listener) {
    error(`Kafka ${cluster} has no listener on port ${port}`);
    return;
  }
  const peers = asArray(listener.networkPolicyPeers).map((p) => asObject(p));
  const admitted =
    peers.length === 0 ||
    peers.some(
      (p) =>
        !p?.namespaceSelector &&
        selectorMatches(asObject(p?.podSelector) as LabelSelector | undefined, client.labels),
    );
  if (!admitted)
    error(
      `the networkPolicyPeers of Kafka ${cluster}'s listener "${asString(listener.name)}" do not admit its pods`,
    );

  const { brokers } = kafkaCluster(kafka, resources);
  const rf = Number(env.get("RECSYS_KAFKA_REPLICATION_FACTOR")?.value ?? 1);
  if (rf > brokers)
    error(`RECSYS_KAFKA_REPLICATION_FACTOR=${rf} but Kafka ${cluster} has ${brokers} brokers`);
  const prefix = env.get("RECSYS_BUS_TOPIC_PREFIX")?.value ?? "";
  const topics = resources.filter(
    (r) =>
      r.kind === "KafkaTopic" && namespaceOf(r) === namespaceOf(kafka) && r.metadata.labels !== undefined,
  );
  const topicNamed = (id: string) =>
    topics.find(
      (r) => (asString(asObject(r.spec)?.topicName) ?? String(r.metadata.name)) === `${prefix}${id}`,
    );
  for (const id of Object.keys(DESIGN_TOPICS)) {
    if (!topicNamed(id)) error(`no KafkaTopic for "${prefix}${id}" (RECSYS_BUS_TOPIC_PREFIX="${prefix}")`);
  }
  const partitions = Number(env.get("RECSYS_KAFKA_PARTITIONS")?.value ?? 3);
  const expected = asObject(topicNamed(CO_PARTITIONED[0])?.spec)?.partitions;
  if (typeof expected === "number" && partitions !== expected) {
    error(`RECSYS_KAFKA_PARTITIONS=${partitions}, but the user-keyed topics have ${expected} partitions`);
  }
}

/**
 * `hostname:port`, named by the client's `what` (an env key), is a rendered
 * Service with that port, and the NetworkPolicies of the pods behind it admit
 * the client's pods on the target port.
 */
export function checkReachable(
  ctx: RuleContext,
  policies: readonly K8sObject[],
  client: PodTemplate,
  what: string,
  hostname: string,
  port: number,
  error: (m: string) => void,
): void {
  const host = splitHost(hostname, client.namespace);
  const svc = ctx.resources.find(
    (r) => r.kind === "Service" && r.metadata.name === host?.name && namespaceOf(r) === host?.namespace,
  ) as (K8sObject & IService) | undefined;
  if (!svc) {
    error(`${what} host "${hostname}" is not a rendered Service`);
    return;
  }
  const servicePort = (svc.spec?.ports ?? []).find((p) => p.port === port);
  if (!servicePort) {
    error(`Service ${host?.name} has no port ${port}`);
    return;
  }
  const servers = ctx.templates.filter(
    (t) => t.namespace === namespaceOf(svc) && mapSelectorMatches(svc.spec?.selector ?? { "": "" }, t.labels),
  );
  for (const server of servers) {
    const target = servicePort.targetPort ?? port;
    const number =
      typeof target === "number"
        ? target
        : server.spec.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === target)?.containerPort;
    if (number === undefined) continue; // the service-ports rule reports it
    const admitted = sourcesFor(
      policies,
      server,
      number,
      typeof target === "string" ? target : undefined,
    ).some(
      (s) => s.anyone || (!s.peer.namespaceSelector && selectorMatches(s.peer.podSelector, client.labels)),
    );
    if (!admitted) error(`no NetworkPolicy admits its pods to ${server.id} on port ${number}`);
  }
}
