/**
 * The Kafka contract: topic names, message schemas (recsys.events.v1) and
 * keys. Physical names carry an optional prefix (RECSYS_BUS_TOPIC_PREFIX), so
 * several stacks or test runs can share one broker.
 *
 * | topic          | message               | key        | written by     | read by                 |
 * |----------------|-----------------------|------------|----------------|-------------------------|
 * | impressions    | Impression            | user id    | gateway        | stream (samples)        |
 * | feedback       | Feedback              | user id    | gateway        | stream (state, samples) |
 * | samples        | Sample                | user id    | stream         | trainer (online mode)   |
 * | items          | ItemUpdate            | item id    | catalog        | recall, prerank, rank   |
 * | model-versions | ModelVersionPublished | model name | trainer        | model-serving services  |
 */
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  FeedbackSchema,
  ImpressionSchema,
  ItemUpdateSchema,
  ModelVersionPublishedSchema,
  SampleSchema,
} from "../gen/recsys/events/v1/events_pb.js";
import type { BusRecord, ConsumedRecord } from "./port.js";

export interface TopicSpec<S extends DescMessage = DescMessage> {
  /** Logical name; the physical one is prefix + id. */
  readonly id: string;
  readonly schema: S;
  /** Partitioning key of a message. */
  key(message: MessageShape<S>): string;
}

function topic<S extends DescMessage>(id: string, schema: S, key: (m: MessageShape<S>) => string) {
  return { id, schema, key } satisfies TopicSpec<S>;
}

export const TOPICS = {
  impressions: topic("impressions", ImpressionSchema, (m) => m.userId),
  feedback: topic("feedback", FeedbackSchema, (m) => m.userId),
  samples: topic("samples", SampleSchema, (m) => m.userId),
  items: topic("items", ItemUpdateSchema, (m) => m.item?.itemId ?? ""),
  modelVersions: topic("model-versions", ModelVersionPublishedSchema, (m) => m.model),
} as const;

export type TopicKey = keyof typeof TOPICS;

/**
 * Topics whose consumers need each key's latest record however old (items:
 * every item's current version; model-versions: each model's current
 * version): created with cleanup.policy=compact, never time-deleted.
 */
const COMPACTED_TOPIC_IDS: readonly string[] = [TOPICS.items.id, TOPICS.modelVersions.id];

/** Whether a physical topic name (any prefix) is one of the compacted topics. */
export function isCompactedTopic(name: string): boolean {
  return COMPACTED_TOPIC_IDS.some((id) => name.endsWith(id));
}

/** Physical topic names under a prefix. */
export class TopicNames {
  constructor(readonly prefix = "") {}

  of(key: TopicKey): string {
    return `${this.prefix}${TOPICS[key].id}`;
  }

  all(): string[] {
    return (Object.keys(TOPICS) as TopicKey[]).map((k) => this.of(k));
  }
}

/** Encodes a message of `spec` as a bus record keyed as the contract says. */
export function encodeRecord<S extends DescMessage>(
  spec: TopicSpec<S>,
  message: MessageShape<S>,
  timestampMs = Date.now(),
): BusRecord {
  return { key: spec.key(message), value: toBinary(spec.schema, message), timestampMs };
}

export function decodeRecord<S extends DescMessage>(
  spec: TopicSpec<S>,
  record: ConsumedRecord,
): MessageShape<S> {
  return fromBinary(spec.schema, record.value);
}
