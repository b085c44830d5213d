import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { checkOverlay, checkRepository, checkResources, listOverlays } from "./check.js";
import type { JsonObject, K8sObject } from "./json.js";
import { renderKustomization } from "./render.js";
import { podSpecOf } from "./resources.js";
import type { Finding } from "./rules/types.js";
import { defaultRepoRoot, loadServiceConfigs, PLANNED_KEYS } from "./service-config.js";

const repo = defaultRepoRoot();
const k8s = join(repo, "k8s");
const services = await loadServiceConfigs(repo);
const errorsOf = (findings: readonly Finding[]) => findings.filter((f) => f.severity === "error");
const show = (findings: readonly Finding[]) =>
  findings.map((f) => `[${f.rule}] ${f.resource}: ${f.message}`).join("\n");

describe("the real manifests", () => {
  const overlays = listOverlays(k8s);

  it("has the dev, prod and gpu overlays", () => assert.deepEqual(overlays, ["dev", "gpu", "prod"]));

  for (const overlay of overlays) {
    it(`${overlay} renders and passes every rule`, async () => {
      const report = await checkOverlay(join(k8s, "overlays", overlay), overlay, { services });
      assert.ok(report.resources.length > 40, "renders the whole stack");
      assert.deepEqual(errorsOf(report.findings), [], show(report.findings));
    });
  }

  it("the Dockerfiles pass, and every recsys/* image has one", async () => {
    const report = await checkRepository(repo, k8s, { services, overlays });
    assert.deepEqual(report.dockerfiles, [], show(report.dockerfiles));
  });
});

describe("the services the check reads", () => {
  it("include the online trainer, with its own keys, the common ones and the bus's", () => {
    const online = services.get("online-trainer");
    assert.ok(online, "services/online-trainer/dist/config.js is loaded");
    for (const key of [
      "RECSYS_ONLINE_DIR",
      "RECSYS_ONLINE_TRAINER_ADDR",
      "RECSYS_DATA_DIR",
      "RECSYS_KAFKA_BROKERS",
    ])
      assert.ok(online.keys.has(key), key);
  });
});

describe("the trainer CronJob", () => {
  it("runs every offline step, the rank models after content and the sequence models", () => {
    const spec = pod(pristine, "CronJob", "trainer");
    const steps = [
      ...(spec.initContainers as JsonObject[]).map((c) => c.name),
      ...(spec.containers as JsonObject[]).map((c) => c.name),
    ];
    assert.deepEqual(steps, [
      "dataset",
      "swing",
      "sequence-models",
      "content",
      "generative-model",
      "rank-models",
    ]);
    const step = (name: string) =>
      [...(spec.initContainers as JsonObject[]), ...(spec.containers as JsonObject[])].find(
        (c) => c.name === name,
      ) as JsonObject;
    assert.deepEqual(step("sequence-models").command, ["bash", "scripts/train.sh"]);
    assert.deepEqual(step("rank-models").command, ["bash", "scripts/train-rank.sh"]);
    assert.deepEqual(step("generative-model").command, ["bash", "scripts/train.sh"]);
    assert.ok((step("generative-model").args as string[]).includes("generative"));
    // The encoder is in the recall image, not the trainer's.
    assert.match(String(step("content").image), /^recsys\/recall:/);
  });
});

// ---- seeded mistakes, in memory, on the rendered prod overlay --------------

const pristine = renderKustomization(join(k8s, "overlays", "prod")).resources;
const pristineGpu = renderKustomization(join(k8s, "overlays", "gpu")).resources;

function find(rs: K8sObject[], kind: string, name: string): K8sObject {
  const r = rs.find(
    (x) => x.kind === kind && (x.metadata.name === name || String(x.metadata.name).startsWith(`${name}-`)),
  );
  assert.ok(r, `${kind}/${name} is rendered`);
  return r;
}

function pod(rs: K8sObject[], kind: string, name: string): JsonObject {
  const spec = podSpecOf(find(rs, kind, name));
  assert.ok(spec);
  return spec;
}

function container(rs: K8sObject[], deployment: string, name = deployment, kind = "Deployment"): JsonObject {
  const c = (pod(rs, kind, deployment).containers as JsonObject[]).find((x) => x.name === name);
  assert.ok(c, `container ${name}`);
  return c;
}

const catalog = (rs: K8sObject[]) => container(rs, "catalog", "catalog", "StatefulSet");

function data(rs: K8sObject[], configMap: string): JsonObject {
  return find(rs, "ConfigMap", configMap).data as JsonObject;
}

function remove(rs: K8sObject[], kind: string, name: string): void {
  rs.splice(rs.indexOf(find(rs, kind, name)), 1);
}

interface Mistake {
  readonly name: string;
  readonly rule: string;
  readonly message: RegExp;
  /** The overlay whose render is seeded; prod unless said. */
  readonly overlay?: "prod" | "gpu";
  seed(rs: K8sObject[]): void;
}

/** A key PLANNED_KEYS still lists and its service does not declare yet (none once all have landed). */
const plannedKey = Object.entries(PLANNED_KEYS)
  .flatMap(([service, keys]) => Object.keys(keys ?? {}).map((key) => ({ service, key })))
  .find(({ service, key }) => !services.get(service as "rank")?.keys.has(key));

const MISTAKES: Mistake[] = [
  // the three the issue names
  {
    name: "a missing readiness probe",
    rule: "probes",
    message: /container "rank" has no readinessProbe/,
    seed: (rs) => delete container(rs, "rank").readinessProbe,
  },
  {
    name: "a missing startup probe (model loading would be killed by liveness)",
    rule: "probes",
    message: /container "recall" has no startupProbe/,
    seed: (rs) => delete container(rs, "recall").startupProbe,
  },
  {
    name: "a wrong port in a probe",
    rule: "probes",
    message: /livenessProbe targets port 50099/,
    seed: (rs) => {
      (container(rs, "rerank").livenessProbe as JsonObject).grpc = { port: 50099 };
    },
  },
  {
    name: "a wrong targetPort in a Service",
    rule: "service-ports",
    message: /targetPort 50099 is not a port of Deployment\/recsys\/recall/,
    seed: (rs) => {
      ((find(rs, "Service", "recall-headless").spec as JsonObject).ports as JsonObject[])[0] = {
        name: "grpc",
        port: 50052,
        targetPort: 50099,
      };
    },
  },
  {
    name: "a wrong container port (the service listens elsewhere)",
    rule: "funnel-ports",
    message: /RECSYS_PRERANK_ADDR=0\.0\.0\.0:50053 but the container port named grpc is 50060/,
    seed: (rs) => {
      ((container(rs, "prerank").ports as JsonObject[])[0] as JsonObject).containerPort = 50060;
    },
  },
  {
    name: "a listen address on localhost (unreachable in a pod)",
    rule: "funnel-ports",
    message: /RECSYS_RANK_ADDR=127\.0\.0\.1:50054 does not listen on all interfaces/,
    seed: (rs) => {
      data(rs, "rank-config").RECSYS_RANK_ADDR = "127.0.0.1:50054";
    },
  },
  {
    name: "a wrong port in a stage target",
    rule: "stage-targets",
    message: /RECSYS_RANK_TARGET: Service rank-headless has no port 50099/,
    seed: (rs) => {
      data(rs, "gateway-config").RECSYS_RANK_TARGET = "dns:///rank-headless.recsys.svc.cluster.local:50099";
    },
  },
  {
    name: "a stage target in another namespace",
    rule: "stage-targets",
    message: /no Service "recall-headless" in namespace "recsys-dev"/,
    seed: (rs) => {
      data(rs, "gateway-config").RECSYS_RECALL_TARGET =
        "dns:///recall-headless.recsys-dev.svc.cluster.local:50052";
    },
  },
  {
    name: "a NetworkPolicy that opens the wrong port",
    rule: "network-policies",
    message: /opens port 50099, which Deployment\/recsys\/prerank does not declare/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "prerank-from-gateway").spec as JsonObject;
      (((np.ingress as JsonObject[])[0] as JsonObject).ports as JsonObject[])[0] = {
        protocol: "TCP",
        port: 50099,
      };
    },
  },
  {
    name: "an unknown config key in a ConfigMap",
    rule: "config-keys",
    message: /ConfigMap recall-config-\w+ has RECSYS_RECAL_QUOTAS, which recall does not read/,
    seed: (rs) => {
      data(rs, "recall-config").RECSYS_RECAL_QUOTAS = "swing=1";
    },
  },
  ...(plannedKey
    ? [
        {
          name: "a planned key in a ConfigMap (allowed only as direct env)",
          rule: "config-keys",
          message: new RegExp(`has ${plannedKey.key}, which ${plannedKey.service} does not read`),
          seed: (rs: K8sObject[]) => {
            data(rs, `${plannedKey.service}-config`)[plannedKey.key] = "x";
          },
        },
      ]
    : []),
  {
    name: "an execution provider rank does not know",
    rule: "config-keys",
    message: /RECSYS_RANK_EXECUTION_PROVIDER="rocm" from ConfigMap rank-config-\w+: /,
    seed: (rs) => {
      data(rs, "rank-config").RECSYS_RANK_EXECUTION_PROVIDER = "rocm";
    },
  },
  {
    name: "rank on cuda without a GPU (gpu overlay)",
    rule: "execution-provider",
    overlay: "gpu",
    message: /RECSYS_RANK_EXECUTION_PROVIDER=cuda but no nvidia\.com\/gpu is requested/,
    seed: (rs) => {
      const resources = container(rs, "rank").resources as JsonObject;
      delete (resources.requests as JsonObject)["nvidia.com/gpu"];
      delete (resources.limits as JsonObject)["nvidia.com/gpu"];
    },
  },
  {
    name: "rank on cuda from the CPU image (gpu overlay)",
    rule: "execution-provider",
    overlay: "gpu",
    message: /image recsys\/rank lacks ONNX Runtime's CUDA provider/,
    seed: (rs) => void (container(rs, "rank").image = "recsys/rank:0.1.0"),
  },
  {
    name: "a GPU given to rank on the cpu provider",
    rule: "execution-provider",
    message: /holds 1 nvidia\.com\/gpu but RECSYS_RANK_EXECUTION_PROVIDER=cpu/,
    seed: (rs) => {
      ((container(rs, "rank").resources as JsonObject).limits as JsonObject)["nvidia.com/gpu"] = 1;
    },
  },
  {
    name: "recall capped below what the gateway's funnel asks",
    rule: "funnel-limits",
    message: /max_candidates 2000, above RECSYS_RECALL_MAX_CANDIDATES=1500/,
    seed: (rs) => {
      data(rs, "recall-config").RECSYS_RECALL_MAX_CANDIDATES = "1500";
    },
  },
  {
    name: "rerank capped below the gateway's count",
    rule: "funnel-limits",
    message: /RECSYS_MAX_COUNT=100, above RECSYS_RERANK_MAX_COUNT=50/,
    seed: (rs) => {
      data(rs, "rerank-config").RECSYS_RERANK_MAX_COUNT = "50";
    },
  },
  {
    name: "an unknown key in the catalog's ConfigMap",
    rule: "config-keys",
    message: /ConfigMap catalog-config-\w+ has RECSYS_CATALOG_MAX_BATCHES, which catalog does not read/,
    seed: (rs) => {
      data(rs, "catalog-config").RECSYS_CATALOG_MAX_BATCHES = "10";
    },
  },
  {
    name: "a second catalog writer",
    rule: "single-writer",
    message: /replicas is 2; the item store allows exactly 1 writer/,
    seed: (rs) => {
      (find(rs, "StatefulSet", "catalog").spec as JsonObject).replicas = 2;
    },
  },
  {
    name: "an HPA on the catalog",
    rule: "single-writer",
    message: /HorizontalPodAutoscaler catalog scales it/,
    seed: (rs) => {
      const hpa = structuredClone(find(rs, "HorizontalPodAutoscaler", "rerank"));
      hpa.metadata.name = "catalog";
      ((hpa.spec as JsonObject).scaleTargetRef as JsonObject) = {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        name: "catalog",
      };
      rs.push(hpa);
    },
  },
  {
    name: "the catalog's item store on an emptyDir",
    rule: "single-writer",
    message:
      /RECSYS_CATALOG_STORE_DIR=\/tmp\/catalog is on volume "tmp", not on one of its volumeClaimTemplates/,
    seed: (rs) => {
      data(rs, "catalog-config").RECSYS_CATALOG_STORE_DIR = "/tmp/catalog";
    },
  },
  {
    name: "the catalog's item store on the read-only root",
    rule: "single-writer",
    message: /RECSYS_CATALOG_STORE_DIR="var\/catalog" is relative/,
    seed: (rs) => {
      delete data(rs, "catalog-config").RECSYS_CATALOG_STORE_DIR;
    },
  },
  {
    name: "the catalog open to every pod",
    rule: "funnel-network",
    message: /port 50057 admits every pod and namespace/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "catalog-from-writers").spec as JsonObject;
      delete ((np.ingress as JsonObject[])[0] as JsonObject).from;
    },
  },
  {
    name: "the catalog without a PDB",
    rule: "hpa-pdb",
    message: /0 PodDisruptionBudgets select its pods/,
    seed: (rs) => remove(rs, "PodDisruptionBudget", "catalog"),
  },
  {
    name: "the catalog listening on localhost",
    rule: "funnel-ports",
    message: /RECSYS_CATALOG_ADDR=127\.0\.0\.1:50057 does not listen on all interfaces/,
    seed: (rs) => {
      data(rs, "catalog-config").RECSYS_CATALOG_ADDR = "127.0.0.1:50057";
    },
  },
  {
    name: "the catalog without the Kafka client label",
    rule: "event-bus",
    message:
      /container "catalog": the networkPolicyPeers of Kafka recsys's listener "plain" do not admit its pods/,
    seed: (rs) => {
      const template = (find(rs, "StatefulSet", "catalog").spec as JsonObject).template as JsonObject;
      delete ((template.metadata as JsonObject).labels as JsonObject)["recsys.io/kafka-client"];
    },
  },
  {
    name: "the catalog's startup probe on the wrong port",
    rule: "funnel-ports",
    message: /container "catalog": startupProbe checks gRPC health on 50051, not the grpc port 50057/,
    seed: (rs) => {
      (catalog(rs).startupProbe as JsonObject).grpc = { port: 50051 };
    },
  },
  // the online trainer: a single consumer and writer, like the catalog
  {
    name: "an unknown key in the online trainer's ConfigMap",
    rule: "config-keys",
    message:
      /ConfigMap online-trainer-config-\w+ has RECSYS_ONLINE_EVERY_SAMPLE, which online-trainer does not read/,
    seed: (rs) => {
      data(rs, "online-trainer-config").RECSYS_ONLINE_EVERY_SAMPLE = "500";
    },
  },
  {
    name: "an online tolerance the online trainer's spec rejects",
    rule: "config-keys",
    message: /RECSYS_ONLINE_TOLERANCE="2" from ConfigMap online-trainer-config-\w+: /,
    seed: (rs) => {
      data(rs, "online-trainer-config").RECSYS_ONLINE_TOLERANCE = "2";
    },
  },
  {
    name: "a second online trainer",
    rule: "single-writer",
    message: /replicas is 2; the online state \(state\.json, shards\) allows exactly 1 writer/,
    seed: (rs) => {
      (find(rs, "StatefulSet", "online-trainer").spec as JsonObject).replicas = 2;
    },
  },
  {
    name: "an HPA on the online trainer",
    rule: "single-writer",
    message: /HorizontalPodAutoscaler online-trainer scales it/,
    seed: (rs) => {
      const hpa = structuredClone(find(rs, "HorizontalPodAutoscaler", "stream"));
      hpa.metadata.name = "online-trainer";
      ((hpa.spec as JsonObject).scaleTargetRef as JsonObject) = {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        name: "online-trainer",
      };
      rs.push(hpa);
    },
  },
  {
    name: "the online trainer's state on an emptyDir",
    rule: "single-writer",
    message: /RECSYS_ONLINE_DIR=\/tmp\/online is on volume "tmp", not on one of its volumeClaimTemplates/,
    seed: (rs) => {
      data(rs, "online-trainer-config").RECSYS_ONLINE_DIR = "/tmp/online";
    },
  },
  {
    name: "the online trainer's state on the read-only root (the service's default)",
    rule: "single-writer",
    message: /RECSYS_ONLINE_DIR="var\/online" is relative/,
    seed: (rs) => {
      delete data(rs, "online-trainer-config").RECSYS_ONLINE_DIR;
    },
  },
  {
    name: "the online trainer with a read-only model store (it publishes versions)",
    rule: "single-writer",
    message: /RECSYS_MODEL_STORE=\/var\/lib\/recsys\/models is on read-only mount "store"/,
    seed: (rs) => {
      const mounts = container(rs, "online-trainer", "online-trainer", "StatefulSet")
        .volumeMounts as JsonObject[];
      const store = mounts.find((m) => m.name === "store");
      assert.ok(store);
      store.readOnly = true;
    },
  },
  {
    name: "the online trainer without a PDB",
    rule: "hpa-pdb",
    message: /0 PodDisruptionBudgets select its pods/,
    seed: (rs) => remove(rs, "PodDisruptionBudget", "online-trainer"),
  },
  {
    name: "the online trainer listening on localhost",
    rule: "funnel-ports",
    message: /RECSYS_ONLINE_TRAINER_ADDR=127\.0\.0\.1:50058 does not listen on all interfaces/,
    seed: (rs) => {
      data(rs, "online-trainer-config").RECSYS_ONLINE_TRAINER_ADDR = "127.0.0.1:50058";
    },
  },
  {
    name: "the online trainer without the Kafka client label",
    rule: "event-bus",
    message:
      /container "online-trainer": the networkPolicyPeers of Kafka recsys's listener "plain" do not admit its pods/,
    seed: (rs) => {
      const template = (find(rs, "StatefulSet", "online-trainer").spec as JsonObject).template as JsonObject;
      delete ((template.metadata as JsonObject).labels as JsonObject)["recsys.io/kafka-client"];
    },
  },
  {
    name: "the online trainer's egress closed to the brokers",
    rule: "event-bus",
    message: /container "online-trainer": its egress NetworkPolicies do not open port 9092/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "online-trainer-egress").spec as JsonObject;
      np.egress = (np.egress as JsonObject[]).slice(0, 1);
    },
  },
  {
    name: "the online trainer's egress closed to DNS",
    rule: "event-bus",
    message: /container "online-trainer": its egress NetworkPolicies do not open DNS/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "online-trainer-egress").spec as JsonObject;
      np.egress = (np.egress as JsonObject[]).slice(1);
    },
  },
  {
    name: "the online trainer's health port opened to callers",
    rule: "funnel-network",
    message: /port 50058 serves health only/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "metrics-from-prometheus").spec as JsonObject;
      (((np.ingress as JsonObject[])[0] as JsonObject).ports as JsonObject[]).push({
        protocol: "TCP",
        port: 50058,
      });
    },
  },
  {
    name: "the online trainer's metrics closed to Prometheus",
    rule: "funnel-network",
    message: /no NetworkPolicy admits a monitoring namespace to the metrics port 9464/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "metrics-from-prometheus").spec as JsonObject;
      const expr = ((np.podSelector as JsonObject).matchExpressions as JsonObject[])[0] as JsonObject;
      expr.values = (expr.values as string[]).filter((v) => v !== "online-trainer");
    },
  },
  {
    name: "an unknown env key",
    rule: "config-keys",
    message: /env RECSYS_RERANK_DIVERSITY is not read by rerank/,
    seed: (rs) => {
      (container(rs, "rerank").env as JsonObject[]).push({ name: "RECSYS_RERANK_DIVERSITY", value: "mmr" });
    },
  },
  {
    name: "a value the service's spec rejects",
    rule: "config-keys",
    message: /RECSYS_RERANK_MMR_LAMBDA="1\.5" from ConfigMap rerank-config-\w+: /,
    seed: (rs) => {
      data(rs, "rerank-config").RECSYS_RERANK_MMR_LAMBDA = "1.5";
    },
  },
  {
    name: "a metrics port that is not the annotated one",
    rule: "funnel-ports",
    message: /RECSYS_METRICS_PORT=9465 but the container port named metrics is 9464/,
    seed: (rs) => {
      data(rs, "recsys-common").RECSYS_METRICS_PORT = "9465";
    },
  },
  {
    name: "a latest tag",
    rule: "images",
    message: /uses the latest tag/,
    seed: (rs) => void (container(rs, "gateway").image = "recsys/gateway:latest"),
  },
  {
    name: "an image without a tag",
    rule: "images",
    message: /has no tag/,
    seed: (rs) => void (container(rs, "rank").image = "recsys/rank"),
  },
  {
    name: "a Deployment without an HPA",
    rule: "hpa-pdb",
    message: /0 HorizontalPodAutoscalers target it/,
    seed: (rs) => remove(rs, "HorizontalPodAutoscaler", "rerank"),
  },
  {
    name: "a Deployment without a PDB",
    rule: "hpa-pdb",
    message: /0 PodDisruptionBudgets select its pods/,
    seed: (rs) => remove(rs, "PodDisruptionBudget", "prerank"),
  },
  {
    name: "a PDB that blocks every drain",
    rule: "hpa-pdb",
    message: /minAvailable=3 of at least 3 replicas/,
    seed: (rs) => {
      const spec = find(rs, "PodDisruptionBudget", "recall").spec as JsonObject;
      delete spec.maxUnavailable;
      spec.minAvailable = 3;
    },
  },
  {
    name: "a container without limits",
    rule: "resources",
    message: /container "wait-for-store" has no memory limit/,
    seed: (rs) => {
      const init = (pod(rs, "Deployment", "gateway").initContainers as JsonObject[])[0] as JsonObject;
      delete (init.resources as JsonObject).limits;
    },
  },
  {
    name: "a container that may run as root",
    rule: "security-context",
    message: /container "redis": runAsNonRoot is not true/,
    seed: (rs) => {
      delete (pod(rs, "StatefulSet", "redis").securityContext as JsonObject).runAsNonRoot;
    },
  },
  {
    name: "a writable root filesystem",
    rule: "security-context",
    message: /container "swing": readOnlyRootFilesystem is not true/,
    seed: (rs) => {
      const swing = (pod(rs, "CronJob", "trainer").initContainers as JsonObject[]).find(
        (c) => c.name === "swing",
      );
      assert.ok(swing);
      (swing.securityContext as JsonObject).readOnlyRootFilesystem = false;
    },
  },
  {
    name: "a heap larger than the memory limit allows",
    rule: "node-heap",
    message: /heap 3000 MiB is over 80% of its 2Gi limit/,
    seed: (rs) => {
      ((container(rs, "rank").env as JsonObject[])[0] as JsonObject).value = "--max-old-space-size=3000";
    },
  },
  {
    name: "a grace period shorter than the drain",
    rule: "shutdown",
    message: /terminationGracePeriodSeconds=10 < preStop 5s \+ drain 10s/,
    seed: (rs) => {
      pod(rs, "Deployment", "gateway").terminationGracePeriodSeconds = 10;
    },
  },
  {
    name: "a stage open to every pod",
    rule: "funnel-network",
    message: /port 50054 admits callers other than the gateway's pods/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "rank-from-gateway").spec as JsonObject;
      delete ((np.ingress as JsonObject[])[0] as JsonObject).from;
    },
  },
  {
    name: "no default-deny policy",
    rule: "funnel-network",
    message: /no default-deny ingress NetworkPolicy/,
    seed: (rs) => remove(rs, "NetworkPolicy", "default-deny-ingress"),
  },
  {
    name: "a model store that only one node can mount",
    rule: "volumes",
    message: /must be ReadWriteMany or ReadOnlyMany/,
    seed: (rs) => {
      (find(rs, "PersistentVolumeClaim", "model-store").spec as JsonObject).accessModes = ["ReadWriteOnce"];
    },
  },
  {
    name: "a topic with more replicas than brokers",
    rule: "strimzi",
    message: /spec\.replicas=4 but the cluster has 3 brokers/,
    seed: (rs) => {
      const spec = find(rs, "KafkaTopic", "samples").spec as JsonObject;
      spec.replicas = 4;
    },
  },
  {
    name: "a topic whose min.insync.replicas equals its replicas",
    rule: "strimzi",
    message: /min\.insync\.replicas=3 equals replicas/,
    seed: (rs) => {
      ((find(rs, "KafkaTopic", "feedback").spec as JsonObject).config as JsonObject)["min.insync.replicas"] =
        3;
    },
  },
  {
    name: "topics joined by the stream service that are not co-partitioned",
    rule: "kafka-topics",
    message: /co-partitioned topics differ in partitions: impressions=12, feedback=6/,
    seed: (rs) => {
      (find(rs, "KafkaTopic", "feedback").spec as JsonObject).partitions = 6;
    },
  },
  {
    name: "brokers in another namespace",
    rule: "event-bus",
    message:
      /broker "recsys-kafka-bootstrap\.recsys-dev\.svc\.cluster\.local:9092" is not the bootstrap Service of a rendered Kafka/,
    seed: (rs) => {
      data(rs, "recsys-bus").RECSYS_KAFKA_BROKERS =
        "recsys-kafka-bootstrap.recsys-dev.svc.cluster.local:9092";
    },
  },
  {
    name: "no brokers (the embedded bus would write to the read-only root)",
    rule: "event-bus",
    message: /RECSYS_KAFKA_BROKERS is empty/,
    seed: (rs) => {
      data(rs, "recsys-bus").RECSYS_KAFKA_BROKERS = "";
    },
  },
  {
    name: "a Kafka client without the label the listener admits",
    rule: "event-bus",
    message:
      /container "stream": the networkPolicyPeers of Kafka recsys's listener "plain" do not admit its pods/,
    seed: (rs) => {
      const template = (find(rs, "Deployment", "stream").spec as JsonObject).template as JsonObject;
      delete ((template.metadata as JsonObject).labels as JsonObject)["recsys.io/kafka-client"];
    },
  },
  {
    name: "a Redis client the Redis NetworkPolicy does not admit",
    rule: "event-bus",
    message:
      /container "gateway": no NetworkPolicy admits its pods to StatefulSet\/recsys\/redis on port 6379/,
    seed: (rs) => {
      const template = (find(rs, "Deployment", "gateway").spec as JsonObject).template as JsonObject;
      delete ((template.metadata as JsonObject).labels as JsonObject)["recsys.io/redis-client"];
    },
  },
  {
    name: "a Redis URL with the wrong port",
    rule: "event-bus",
    message: /Service redis has no port 6380/,
    seed: (rs) => {
      data(rs, "recsys-user-state").RECSYS_REDIS_URL = "redis://redis.recsys.svc.cluster.local:6380";
    },
  },
  {
    name: "a spill dir on the read-only root",
    rule: "event-bus",
    message: /RECSYS_SPILL_DIR="var\/spill" is not under a writable volume mount/,
    seed: (rs) => {
      data(rs, "recsys-bus").RECSYS_SPILL_DIR = "var/spill";
    },
  },
  {
    name: "a replication factor above the brokers",
    rule: "event-bus",
    message: /RECSYS_KAFKA_REPLICATION_FACTOR=5 but Kafka recsys has 3 brokers/,
    seed: (rs) => {
      data(rs, "recsys-bus").RECSYS_KAFKA_REPLICATION_FACTOR = "5";
    },
  },
  {
    name: "a health-only port opened to callers",
    rule: "funnel-network",
    message: /port 50056 serves health only/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "metrics-from-prometheus").spec as JsonObject;
      delete ((np.ingress as JsonObject[])[0] as JsonObject).ports;
    },
  },
  // Strimzi resources against Strimzi's CRD schemas (crds.ts)
  {
    name: "a misspelt field in a Kafka listener (Strimzi CRD)",
    rule: "schema",
    message: /\/spec\/kafka\/listeners\/0 has unknown field "tsl"/,
    seed: (rs) => {
      const listener = ((find(rs, "Kafka", "recsys").spec as JsonObject).kafka as JsonObject)
        .listeners as JsonObject[];
      (listener[0] as JsonObject).tsl = (listener[0] as JsonObject).tls ?? false;
      delete (listener[0] as JsonObject).tls;
    },
  },
  {
    name: "partitions as a string in a KafkaTopic (Strimzi CRD)",
    rule: "schema",
    message: /\/spec\/partitions must be integer/,
    seed: (rs) => {
      (find(rs, "KafkaTopic", "items").spec as JsonObject).partitions = "12";
    },
  },
  {
    name: "a node pool role Strimzi does not know (Strimzi CRD)",
    rule: "schema",
    message: /\/spec\/roles\/0 must be equal to one of the allowed values/,
    seed: (rs) => {
      (find(rs, "KafkaNodePool", "broker").spec as JsonObject).roles = ["voter"];
    },
  },
  {
    name: "a listener port Strimzi reserves",
    rule: "strimzi",
    message: /9404 is reserved by Strimzi/,
    seed: (rs) => {
      const listeners = ((find(rs, "Kafka", "recsys").spec as JsonObject).kafka as JsonObject)
        .listeners as JsonObject[];
      (listeners[0] as JsonObject).port = 9404;
    },
  },
  // tracing (prod overlay: otel/)
  {
    name: "a misspelt OpenTelemetry variable",
    rule: "config-keys",
    message:
      /OTEL_EXPORTER_OTLP_ENDPONT="x" from ConfigMap recsys-otel-\w+: not a standard OpenTelemetry SDK variable/,
    seed: (rs) => {
      data(rs, "recsys-otel").OTEL_EXPORTER_OTLP_ENDPONT = "x";
    },
  },
  {
    name: "a sampler the OpenTelemetry SDK does not know",
    rule: "config-keys",
    message: /OTEL_TRACES_SAMPLER="ratio" from ConfigMap recsys-otel-\w+: expected one of/,
    seed: (rs) => {
      data(rs, "recsys-otel").OTEL_TRACES_SAMPLER = "ratio";
    },
  },
  {
    name: "a sampling ratio above 1",
    rule: "config-keys",
    message:
      /OTEL_TRACES_SAMPLER_ARG="10" from ConfigMap recsys-otel-\w+: parentbased_traceidratio takes a ratio from 0 to 1/,
    seed: (rs) => {
      data(rs, "recsys-otel").OTEL_TRACES_SAMPLER_ARG = "10";
    },
  },
  {
    name: "the OTLP/HTTP exporter pointed at the collector's gRPC port",
    rule: "telemetry",
    message: /is port 4317, but OTLP over http\/protobuf is served on 4318/,
    seed: (rs) => {
      data(rs, "recsys-otel").OTEL_EXPORTER_OTLP_ENDPOINT =
        "http://otel-collector.recsys.svc.cluster.local:4317";
    },
  },
  {
    name: "a collector that is not rendered",
    rule: "telemetry",
    message: /OTEL_EXPORTER_OTLP_ENDPOINT host "otel\.recsys\.svc\.cluster\.local" is not a rendered Service/,
    seed: (rs) => {
      data(rs, "recsys-otel").OTEL_EXPORTER_OTLP_ENDPOINT = "http://otel.recsys.svc.cluster.local:4318";
    },
  },
  {
    name: "the collector closed to the services",
    rule: "telemetry",
    message:
      /container "rank": no NetworkPolicy admits its pods to Deployment\/recsys\/otel-collector on port 4318/,
    seed: (rs) => remove(rs, "NetworkPolicy", "otel-collector-from-services"),
  },
  {
    name: "the online trainer's egress closed to the collector",
    rule: "telemetry",
    message: /container "online-trainer": its egress NetworkPolicies do not open port 4318/,
    seed: (rs) => {
      const np = find(rs, "NetworkPolicy", "online-trainer-egress").spec as JsonObject;
      np.egress = (np.egress as JsonObject[]).filter((e) => JSON.stringify(e).indexOf("4318") < 0);
    },
  },
  {
    name: "one service without the tracing settings",
    rule: "telemetry",
    message: /container "rerank": no OTEL_EXPORTER_OTLP_ENDPOINT although/,
    seed: (rs) => {
      const c = container(rs, "rerank");
      c.envFrom = (c.envFrom as JsonObject[]).filter((e) => !JSON.stringify(e).includes("recsys-otel"));
    },
  },
  {
    name: "a service traced under another service's name",
    rule: "telemetry",
    message: /container "prerank": OTEL_SERVICE_NAME is "rank", not "prerank"/,
    seed: (rs) => {
      const env = container(rs, "prerank").env as JsonObject[];
      const i = env.findIndex((e) => e.name === "OTEL_SERVICE_NAME");
      env[i] = { name: "OTEL_SERVICE_NAME", value: "rank" };
    },
  },
  {
    name: "a schema violation",
    rule: "schema",
    message: /\/spec\/template\/spec\/containers\/0\/ports\/0\/containerPort must be integer/,
    seed: (rs) => {
      ((container(rs, "gateway").ports as JsonObject[])[0] as JsonObject).containerPort = "50051";
    },
  },
];

describe("seeded mistakes are caught", () => {
  it("the unseeded renders have no errors", async () => {
    for (const [overlay, rs] of [
      ["prod", pristine],
      ["gpu", pristineGpu],
    ] as const) {
      const findings = await checkResources(structuredClone(rs), overlay, { services });
      assert.deepEqual(errorsOf(findings), [], show(findings));
    }
  });

  it("the online trainer as a Deployment: a single-writer error, and no demand for an HPA", async () => {
    const resources = structuredClone(pristine);
    const sts = find(resources, "StatefulSet", "online-trainer");
    const spec = sts.spec as JsonObject;
    sts.kind = "Deployment";
    for (const field of ["serviceName", "volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy"])
      delete spec[field];
    spec.strategy = { type: "Recreate" };
    delete spec.updateStrategy;
    const podSpec = (spec.template as JsonObject).spec as JsonObject;
    (podSpec.volumes as JsonObject[]).push({ name: "state", persistentVolumeClaim: { claimName: "online" } });
    const findings = errorsOf(await checkResources(resources, "prod", { services }));
    assert.ok(
      findings.some(
        (f) => f.rule === "single-writer" && /online-trainer must be a StatefulSet/.test(f.message),
      ),
      show(findings),
    );
    assert.ok(
      !findings.some((f) => f.rule === "hpa-pdb" && /HorizontalPodAutoscalers target it/.test(f.message)),
      show(findings),
    );
  });

  for (const mistake of MISTAKES) {
    it(mistake.name, async () => {
      const overlay = mistake.overlay ?? "prod";
      const resources = structuredClone(overlay === "gpu" ? pristineGpu : pristine);
      mistake.seed(resources);
      const findings = errorsOf(await checkResources(resources, overlay, { services }));
      assert.ok(
        findings.some((f) => f.rule === mistake.rule && mistake.message.test(f.message)),
        `expected a [${mistake.rule}] error matching ${mistake.message}, got:\n${show(findings)}`,
      );
    });
  }
});

// ---- the CLI, on the real manifests and on a broken copy -------------------

describe("node deploy/k8s-check/dist/cli.js", () => {
  const cli = fileURLToPath(new URL("./cli.js", import.meta.url));
  const tmp = mkdtempSync(join(tmpdir(), "k8s-check-cli-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", cwd: repo });

  it("passes on the real manifests", () => {
    const result = run();
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /passed/);
  });

  const broken: Array<[string, string, (text: string) => string, RegExp]> = [
    [
      "a probe removed from a file",
      "base/funnel/rank.yaml",
      (t) => t.replace(/ {10}readinessProbe:\n( {12}.*\n)+/, ""),
      /error \[probes\] Deployment\/recsys(-dev)?\/rank: container "rank" has no readinessProbe/,
    ],
    [
      "an unknown key in an env file",
      "base/config/rerank.env",
      (t) => `${t}RECSYS_RERANK_TYPO=1\n`,
      /error \[config-keys\] .*RECSYS_RERANK_TYPO, which rerank does not read/,
    ],
    [
      "an unknown key in the catalog's env file",
      "base/config/catalog.env",
      (t) => `${t}RECSYS_CATALOG_TYPO=1\n`,
      /error \[config-keys\] StatefulSet\/recsys(-dev)?\/catalog: .*RECSYS_CATALOG_TYPO, which catalog does not read/,
    ],
    [
      "an unknown key in the online trainer's env file",
      "base/config/online-trainer.env",
      (t) => `${t}RECSYS_ONLINE_TYPO=1\n`,
      /error \[config-keys\] StatefulSet\/recsys(-dev)?\/online-trainer: .*RECSYS_ONLINE_TYPO, which online-trainer does not read/,
    ],
    [
      "a Service port pointing at a port the pods do not have",
      "base/funnel/prerank.yaml",
      (t) => t.replace("targetPort: grpc", "targetPort: grpcc"),
      /error \[service-ports\] Service\/recsys(-dev)?\/prerank-headless: port grpc: targetPort grpcc/,
    ],
    [
      "a misspelt field in the Kafka resource (Strimzi CRD schema)",
      "base/kafka/kafka.yaml",
      (t) => t.replace(/\btls: false/, "tsl: false"),
      /error \[schema\] Kafka\/recsys(-dev)?\/recsys: \/spec\/kafka\/listeners\/0 has unknown field "tsl"/,
    ],
    [
      "a wrong container port",
      "base/funnel/rerank.yaml",
      (t) => t.replace("containerPort: 50055", "containerPort: 50065"),
      /error \[funnel-ports\] Deployment\/recsys(-dev)?\/rerank: container "rerank": RECSYS_RERANK_ADDR=0\.0\.0\.0:50055 but the container port named grpc is 50065/,
    ],
    [
      "a misspelt OpenTelemetry key in the prod overlay",
      "overlays/prod/otel/otel.env",
      (t) => t.replace("OTEL_TRACES_SAMPLER=", "OTEL_TRACE_SAMPLER="),
      /error \[config-keys\] .*OTEL_TRACE_SAMPLER="parentbased_traceidratio" from ConfigMap recsys-otel-\w+: not a standard OpenTelemetry SDK variable/,
    ],
  ];
  broken.forEach(([name, file, edit, expected], i) => {
    it(`fails on ${name}`, () => {
      const copy = join(tmp, String(i), "k8s");
      cpSync(k8s, copy, { recursive: true });
      const path = join(copy, file);
      const before = readFileSync(path, "utf8");
      const after = edit(before);
      assert.notEqual(after, before, "the seed changed the file");
      writeFileSync(path, after);
      const result = run("--k8s", copy);
      assert.equal(result.status, 1, result.stdout + result.stderr);
      assert.match(result.stdout, expected);
      assert.match(result.stdout, /FAILED/);
    });
  });

  it("lists its rules", () => {
    const result = run("--rules");
    assert.equal(result.status, 0);
    for (const id of ["probes", "config-keys", "service-ports", "hpa-pdb"])
      assert.match(result.stdout, new RegExp(`^${id} `, "m"));
  });

  it("prints a rendered overlay", () => {
    const result = run("--print", "dev");
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /namespace: recsys-dev/);
    assert.match(
      result.stdout,
      /^apiVersion: v1\nkind: Namespace\n/,
      "kustomize prints the Namespace first, for kubectl apply -f -",
    );
    assert.match(result.stdout, /- --appendonly\n\s+- "yes"\n/, "YAML 1.1 booleans stay quoted strings");
  });
});
