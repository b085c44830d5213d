/**
 * The event-bus port. Services publish and consume protobuf records through
 * this interface only; the Kafka adapter (kafkajs) and the embedded adapter
 * (a log on local disk) sit behind it, so swapping the Kafka client touches
 * one file (kafka.ts).
 *
 * Delivery is at least once. Consumers must be idempotent: feedback carries
 * an event id, impressions a request id.
 */
export interface BusRecord {
  /** Partitioning key: user id, item id or model name (see topics.ts). */
  readonly key: string;
  readonly value: Uint8Array;
  /** Producer time, Unix epoch milliseconds. */
  readonly timestampMs: number;
}

export interface ConsumedRecord extends BusRecord {
  /** Physical topic name. */
  readonly topic: string;
  readonly partition: number;
  /** Position of the record in its partition (opaque; for logs). */
  readonly offset: string;
}

export interface PublishOptions {
  /**
   * True (default): resolve only once the records are durable (Kafka:
   * acknowledged by all in-sync replicas; embedded: fsync'd). False lets the
   * embedded adapter batch its fsyncs (impressions): a crash may lose the last
   * second of them.
   */
  readonly sync?: boolean;
}

export interface SubscribeOptions {
  /** Consumer group: each group sees every record once (at least once). */
  readonly groupId: string;
  /** Physical topic names. */
  readonly topics: readonly string[];
  /**
   * Where a group with no committed position starts: the oldest retained
   * record (true) or only new records (false, default).
   */
  readonly fromBeginning?: boolean;
  /**
   * False: never commit positions, so each start replays from the beginning
   * (a consumer whose state lives only in memory). Default true.
   * "manual": positions are committed only by `Subscription.commit`, for a
   * consumer that buffers records and processes them later (the online
   * trainer commits once a shard was trained on); a group with committed
   * positions resumes from them, as with true.
   */
  readonly commit?: boolean | "manual";
  /**
   * Handles records in log order per partition. Positions are committed after
   * it resolves; when it throws, the batch is delivered again.
   */
  handle(batch: readonly ConsumedRecord[]): Promise<void>;
}

/** Where a consumed record sits: enough to commit through it. */
export type RecordPosition = Pick<ConsumedRecord, "topic" | "partition" | "offset">;

export interface Subscription {
  /** True once the consumer has read everything that existed when it started. */
  caughtUp(): boolean;
  /** Resolves once `caughtUp()` holds, or after `timeoutMs` (false). */
  waitCaughtUp(timeoutMs: number): Promise<boolean>;
  /**
   * `commit: "manual"` only: commits the group's position just past each
   * given record (one per topic and partition; the records before it count as
   * processed too). Never moves a position backwards. Throws when the
   * position cannot be committed now (Kafka: the group is rebalancing); the
   * records are then delivered again after a restart or rebalance.
   */
  commit?(through: readonly RecordPosition[]): Promise<void>;
  stop(): Promise<void>;
}

export interface EventBus {
  readonly kind: "kafka" | "embedded";
  /** Creates missing topics (no-op on the embedded bus, whose topics appear on first use). */
  ensureTopics(topics: readonly string[]): Promise<void>;
  /** Appends records to `topic`; resolves once they are accepted (see PublishOptions). */
  publish(topic: string, records: readonly BusRecord[], options?: PublishOptions): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/** Sleeps `ms`, or less when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Rejects with `message` after `ms` unless `promise` settles first. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  if (!Number.isFinite(ms)) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}
