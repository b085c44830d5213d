/** The topics of DESIGN.md, as the stream service will need them. */
import { asObject, asString, idOf, type K8sObject } from "../json.js";
import { findings, type Rule } from "./types.js";

/** Topic -> whether it is a compacted changelog (latest value per key) rather than an event log. */
export const DESIGN_TOPICS: Readonly<Record<string, boolean>> = {
  impressions: false,
  feedback: false,
  samples: false,
  items: true,
  "model-versions": true,
};

/** Keyed by user id and joined per partition by the stream service: same partition count. */
export const CO_PARTITIONED = ["impressions", "feedback", "samples"] as const;

function topicName(t: K8sObject): string {
  return asString(asObject(t.spec)?.topicName) ?? String(t.metadata.name);
}

export const kafkaTopicsRule: Rule = {
  id: "kafka-topics",
  description:
    "Every topic of DESIGN.md has a KafkaTopic; the user-keyed event topics are co-partitioned; items and model-versions are compacted, the event logs are not",
  check(ctx) {
    const f = findings(this.id);
    const topics = ctx.resources.filter((r) => r.kind === "KafkaTopic");
    if (!ctx.resources.some((r) => r.kind === "Kafka")) return f.list;
    for (const [name, compacted] of Object.entries(DESIGN_TOPICS)) {
      const t = topics.find((x) => topicName(x) === name);
      if (!t) {
        f.error(ctx.overlay, `no KafkaTopic for topic "${name}"`);
        continue;
      }
      const policy = String(asObject(asObject(t.spec)?.config)?.["cleanup.policy"] ?? "delete");
      if (compacted !== policy.includes("compact")) {
        f.error(idOf(t), `cleanup.policy=${policy}; expected ${compacted ? "compact" : "delete"}`);
      }
    }
    const counts = CO_PARTITIONED.map((name) => {
      const t = topics.find((x) => topicName(x) === name);
      return `${name}=${String(asObject(t?.spec)?.partitions)}`;
    });
    if (new Set(counts.map((c) => c.split("=")[1])).size > 1) {
      f.error(ctx.overlay, `co-partitioned topics differ in partitions: ${counts.join(", ")}`);
    }
    return f.list;
  },
};
