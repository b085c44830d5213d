/**
 * The Kafka adapter of the event-bus port, on kafkajs 2.2.4. This is the only
 * file that imports kafkajs: moving to another client (e.g.
 * @confluentinc/kafka-javascript, whose API is KafkaJS-compatible) changes
 * this file alone.
 *
 * Producer: idempotent, acks=all, one request in flight per broker (kafkajs
 * needs that to keep sequence numbers in order). kafkajs's own retries are
 * bounded, so a publish fails within seconds when the broker is gone and the
 * caller (SpillingPublisher) spills to disk instead of hanging. After a failed
 * publish the producer is replaced, so a broker restart cannot leave it stuck
 * on stale producer-id or sequence state.
 *
 * Consumers: one kafkajs consumer per subscription, batches handed over per
 * partition, positions committed after the handler resolves (at least once).
 */
import { hostname } from "node:os";
import kafkajs, {
  type Admin,
  type Consumer,
  Kafka,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import type { Logger } from "../log.js";
import type { BusMetrics } from "./metrics.js";
import {
  type BusRecord,
  type ConsumedRecord,
  type EventBus,
  type PublishOptions,
  pause,
  type RecordPosition,
  type SubscribeOptions,
  type Subscription,
} from "./port.js";
import { isCompactedTopic } from "./topics.js";

export interface KafkaBusOptions {
  /** host:port list. */
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger: Logger;
  readonly metrics?: BusMetrics;
  /** Partitions of topics this bus creates. */
  readonly partitions?: number;
  readonly replicationFactor?: number;
  /** Per-request timeout towards the broker. */
  readonly requestTimeoutMs?: number;
  readonly connectionTimeoutMs?: number;
}

export class KafkaBus implements EventBus {
  readonly kind = "kafka" as const;
  private readonly kafka: Kafka;
  private producer: Promise<Producer> | undefined;
  private queue: QueuedPublish[] = [];
  private sending: Promise<void> | undefined;
  private readonly subscriptions = new Set<KafkaSubscription>();
  private closed = false;

  constructor(private readonly options: KafkaBusOptions) {
    const log = options.logger.child({ component: "kafkajs" });
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs ?? 1_000,
      requestTimeout: options.requestTimeoutMs ?? 5_000,
      retry: { initialRetryTime: 100, maxRetryTime: 1_000, retries: 3 },
      logLevel: logLevel.WARN,
      logCreator:
        () =>
        ({ level, log: entry }: LogEntry) => {
          const { message, ...rest } = entry;
          // Retries are bounded on purpose (see the header): records that
          // fail are spilled and replayed, and consumers de-duplicate.
          if (message.startsWith("Limiting retries for the idempotent producer")) return;
          // kafkajs reports every reconnect attempt as an error; the bus
          // metrics and our own logs carry what matters, so these stay at warn.
          if (level <= logLevel.WARN) log.warn(rest, `kafkajs: ${message}`);
          else log.debug(rest, `kafkajs: ${message}`);
        },
    });
  }

  /** Creates missing topics with the configured partitions. */
  async ensureTopics(topics: readonly string[]): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t));
      if (missing.length === 0) return;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: this.options.partitions ?? 3,
          replicationFactor: this.options.replicationFactor ?? 1,
          // A service that finds `items` missing must not create it with the default delete
          // policy: old items would be deleted from the topic (and from every consumer's replay).
          ...(isCompactedTopic(topic)
            ? { configEntries: [{ name: "cleanup.policy", value: "compact" }] }
            : {}),
        })),
      });
      this.options.logger.info({ topics: missing }, "kafka: created topics");
    } catch (err) {
      // Another process may have created them in between.
      if (!/already exists/i.test(String(err))) throw err;
    } finally {
      await admin.disconnect();
    }
  }

  /** Each topic's cleanup.policy as the broker reports it (operations checks and tests). */
  async cleanupPolicies(topics: readonly string[]): Promise<Record<string, string>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((name) => ({
          // (a CommonJS enum: not a named ESM export of kafkajs)
          type: kafkajs.ConfigResourceTypes.TOPIC,
          name,
          configNames: ["cleanup.policy"],
        })),
      });
      return Object.fromEntries(
        described.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue ?? ""]),
      );
    } finally {
      await admin.disconnect();
    }
  }

  /** Connects the producer ahead of the first publish (which would otherwise pay for it). */
  async connect(): Promise<void> {
    await this.getProducer();
  }

  private getProducer(): Promise<Producer> {
    if (this.closed) return Promise.reject(new Error("kafka bus is closed"));
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { initialRetryTime: 100, maxRetryTime: 1_000, retries: 2 },
      });
      const connecting = producer.connect().then(() => producer);
      this.producer = connecting;
      connecting.catch(() => {
        if (this.producer === connecting) this.producer = undefined;
      });
    }
    return this.producer;
  }

  /** Drops the producer after a failure: the next publish starts a fresh one. */
  private resetProducer(failed: Promise<Producer>): void {
    if (this.producer !== failed) return;
    this.producer = undefined;
    void failed.then((p) => p.disconnect()).catch(() => {});
  }

  /**
   * Publishes are group-committed: the idempotent producer allows one request
   * in flight, so publishes that arrive while one is in flight wait and then
   * go together in one produce request (sendBatch). Each caller resolves when
   * the request carrying its records is acknowledged.
   */
  publish(topic: string, records: readonly BusRecord[], _options?: PublishOptions): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, records, resolve, reject, queuedAt: performance.now() });
      this.startSending();
    });
  }

  /**
   * Runs the send loop unless it runs. A caller whose publish just resolved may
   * publish again before the finished loop's `finally` ran (it still looks
   * busy): those records are picked up by a loop started from that `finally`.
   */
  private startSending(): void {
    if (this.sending) return;
    this.sending = this.sendLoop().finally(() => {
      this.sending = undefined;
      if (this.queue.length > 0) this.startSending();
    });
  }

  private async sendLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch: QueuedPublish[] = [];
      let count = 0;
      while (
        this.queue.length > 0 &&
        (batch.length === 0 || count + this.queue[0]!.records.length <= MAX_BATCH_RECORDS)
      ) {
        const next = this.queue.shift()!;
        batch.push(next);
        count += next.records.length;
      }
      const byTopic = new Map<string, BusRecord[]>();
      for (const p of batch) {
        let list = byTopic.get(p.topic);
        if (!list) byTopic.set(p.topic, (list = []));
        list.push(...p.records);
      }
      const producerPromise = this.getProducer();
      try {
        const producer = await producerPromise;
        await producer.sendBatch({
          acks: -1,
          timeout: this.options.requestTimeoutMs ?? 5_000,
          topicMessages: [...byTopic].map(([topic, recs]) => ({
            topic,
            messages: recs.map((r) => ({
              key: r.key,
              value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
              timestamp: String(Math.round(r.timestampMs)),
            })),
          })),
        });
      } catch (err) {
        this.resetProducer(producerPromise);
        for (const p of batch) p.reject(err);
        continue;
      }
      const now = performance.now();
      for (const p of batch) {
        this.options.metrics?.published(p.topic, "kafka", p.records.length, (now - p.queuedAt) / 1000);
        p.resolve();
      }
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const sub = new KafkaSubscription(this.kafka, options, this.options);
    this.subscriptions.add(sub);
    await sub.start();
    return {
      caughtUp: () => sub.caughtUp(),
      waitCaughtUp: (ms) => sub.waitCaughtUp(ms),
      commit: (through) => sub.commit(through),
      stop: async () => {
        this.subscriptions.delete(sub);
        await sub.stop();
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    this.subscriptions.clear();
    const producer = this.producer;
    this.producer = undefined;
    if (producer) await producer.then((p) => p.disconnect()).catch(() => {});
  }
}

interface QueuedPublish {
  readonly topic: string;
  readonly records: readonly BusRecord[];
  readonly queuedAt: number;
  resolve(): void;
  reject(err: unknown): void;
}

/** Records per produce request at most (several publishes share one). */
const MAX_BATCH_RECORDS = 5_000;

/** Partition key "topic/partition". */
const tp = (topic: string, partition: number) => `${topic}/${partition}`;

class KafkaSubscription {
  private consumer: Consumer | undefined;
  private stopped = false;
  /** Offset each partition must reach to count as caught up (high watermark at start). */
  private readonly targets = new Map<string, bigint>();
  private readonly positions = new Map<string, bigint>();

  constructor(
    private readonly kafka: Kafka,
    private readonly options: SubscribeOptions,
    private readonly bus: KafkaBusOptions,
  ) {}

  async start(): Promise<void> {
    // A fresh broker answers GROUP_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE
    // for a while (the offsets topic is being created): retry those.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.measureTargets();
        break;
      } catch (err) {
        const retriable = (err as { retriable?: boolean }).retriable === true;
        if (!retriable || attempt >= 60) throw err;
        await pause(500);
      }
    }
    await this.startConsumer();
  }

  /** Where the group starts and where "caught up" is, per partition. */
  private async measureTargets(): Promise<void> {
    const admin: Admin = this.kafka.admin();
    await admin.connect();
    try {
      const committed = new Map<string, bigint>();
      if (this.options.commit !== false) {
        for (const t of await admin.fetchOffsets({
          groupId: this.options.groupId,
          topics: [...this.options.topics],
        })) {
          for (const p of t.partitions) committed.set(tp(t.topic, p.partition), BigInt(p.offset));
        }
      }
      for (const topic of this.options.topics) {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          const key = tp(topic, p.partition);
          const high = BigInt(p.high);
          const low = BigInt(p.low);
          const saved = committed.get(key) ?? -1n;
          const start = saved >= 0n ? saved : this.options.fromBeginning ? low : high;
          this.targets.set(key, high);
          this.positions.set(key, start);
        }
      }
    } finally {
      await admin.disconnect();
    }
  }

  private async startConsumer(): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.options.groupId,
      sessionTimeout: 10_000,
      rebalanceTimeout: 15_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 250,
      allowAutoTopicCreation: false,
      retry: { initialRetryTime: 300, maxRetryTime: 3_000, retries: 10 },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      const { error, restart } = event.payload as { error: Error; restart: boolean };
      this.bus.logger.warn({ err: error, groupId: this.options.groupId, restart }, "kafka consumer crashed");
      if (!restart && !this.stopped) void this.restart();
    });
    await consumer.connect();
    await consumer.subscribe({
      topics: [...this.options.topics],
      fromBeginning: this.options.fromBeginning ?? false,
    });
    await consumer.run({
      autoCommit: this.options.commit === undefined || this.options.commit === true,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, heartbeat }) => {
        if (batch.messages.length === 0) return;
        const records: ConsumedRecord[] = batch.messages.map((m) => ({
          topic: batch.topic,
          partition: batch.partition,
          offset: m.offset,
          key: m.key?.toString("utf8") ?? "",
          value: m.value ?? new Uint8Array(),
          timestampMs: Number(m.timestamp),
        }));
        await this.options.handle(records);
        const last = batch.messages[batch.messages.length - 1]!;
        this.positions.set(tp(batch.topic, batch.partition), BigInt(last.offset) + 1n);
        this.bus.metrics?.consumed(this.options.groupId, batch.topic, records.length);
        await heartbeat();
      },
    });
  }

  /** A consumer that kafkajs gave up on is replaced, after a pause. */
  private async restart(): Promise<void> {
    const old = this.consumer;
    this.consumer = undefined;
    await old?.disconnect().catch(() => {});
    while (!this.stopped) {
      await pause(2_000);
      if (this.stopped) return;
      try {
        await this.startConsumer();
        return;
      } catch (err) {
        this.bus.logger.warn({ err, groupId: this.options.groupId }, "kafka consumer restart failed");
        await (this.consumer as Consumer | undefined)?.disconnect().catch(() => {});
      }
    }
  }

  /** commit: "manual": the group's offset of each partition becomes the record's offset + 1. */
  async commit(through: readonly RecordPosition[]): Promise<void> {
    if (this.options.commit !== "manual")
      throw new Error('commit() needs a subscription with commit: "manual"');
    const consumer = this.consumer;
    if (!consumer) throw new Error("commit: the kafka consumer is restarting");
    await consumer.commitOffsets(
      through.map((r) => ({
        topic: r.topic,
        partition: r.partition,
        offset: (BigInt(r.offset) + 1n).toString(),
      })),
    );
  }

  caughtUp(): boolean {
    for (const [key, target] of this.targets) if ((this.positions.get(key) ?? 0n) < target) return false;
    return true;
  }

  async waitCaughtUp(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.caughtUp() && Date.now() < deadline && !this.stopped) await pause(50);
    return this.caughtUp();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.consumer?.disconnect().catch(() => {});
  }
}

/** A client id unique to this process, e.g. "gateway-host-1234". */
export function processClientId(service: string): string {
  return `${service}-${hostname()}-${process.pid}`;
}
