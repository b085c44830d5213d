/**
 * Where the online trainer reads the samples and feedback topics.
 *
 * - Embedded bus: the gateway process owns the bus directory (its in-process
 *   stream processor writes the samples there). This process never opens that
 *   bus: it follows the topic logs read-only (followTail in shared/src/bus/tail.ts), polled
 *   every RECSYS_ONLINE_POLL_MS. Positions live in memory; the samples tail
 *   starts where the state file says the last update stopped.
 * - Kafka: a consumer group per topic (see main.ts for the group ids).
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@recsys/shared";
import { type EventBus, followTail, SEGMENT_SUFFIX, type Subscription } from "@recsys/shared/bus";

export interface FeedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** Position just past the record (embedded: byte offset of the next frame; Kafka: offset + 1). */
  readonly next: bigint;
  readonly value: Uint8Array;
  /** Producer time, Unix epoch milliseconds. */
  readonly timestampMs: number;
}

/** What committing needs of a record. */
export type FeedPosition = Pick<FeedRecord, "topic" | "partition" | "offset" | "next">;

export interface Feed {
  /** Identity of what is read, for the state file: "embedded:<log dir>" or "kafka:<topic>". */
  readonly source: string;
  /** True once the feed has read everything that existed when it started. */
  caughtUp(): boolean;
  waitCaughtUp(timeoutMs: number): Promise<boolean>;
  /**
   * A time (ms) such that every record written before it has been read
   * (embedded: the start of the last read that reached the end of the log;
   * Kafka: now once the start-up backlog is read, the consumer then follows
   * the topic within about a second; 0: not yet).
   */
  freshAt(): number;
  /** Commits consumed records to the consumer group (Kafka); no-op on the embedded bus. */
  commit(through: readonly FeedPosition[]): Promise<void>;
  stop(): Promise<void>;
}

export type FeedHandler = (records: readonly FeedRecord[]) => void | Promise<void>;

/** Byte position just past the last record an embedded topic log holds now (0 when it has none). */
export async function embeddedLogEnd(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
  let end = 0;
  for (const name of names) {
    if (!name.endsWith(SEGMENT_SUFFIX)) continue;
    const base = Number(name.slice(0, -SEGMENT_SUFFIX.length));
    if (!Number.isSafeInteger(base)) continue;
    try {
      end = Math.max(end, base + (await stat(join(dir, name))).size);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return end;
}

export interface EmbeddedFeedOptions {
  /** The topic's log directory inside the owner's bus directory (topicDir(busDir, topic)). */
  readonly dir: string;
  readonly topic: string;
  /** Byte offset to start from. */
  readonly from: number;
  readonly pollMs: number;
  readonly logger: Logger;
  readonly handle: FeedHandler;
}

export function followEmbeddedLog(o: EmbeddedFeedOptions): Feed {
  const followed = followTail({
    dir: o.dir,
    from: o.from,
    pollMs: o.pollMs,
    logger: o.logger,
    label: o.topic,
    handle: async (records) => {
      await o.handle(
        records.map((r) => ({
          topic: o.topic,
          partition: 0,
          offset: String(r.offset),
          next: BigInt(r.nextOffset),
          value: r.value,
          timestampMs: r.timestampMs,
        })),
      );
    },
  });
  return {
    source: `embedded:${o.dir}`,
    caughtUp: () => followed.caughtUp(),
    waitCaughtUp: (ms) => followed.waitCaughtUp(ms),
    freshAt: () => followed.freshAt(),
    commit: async () => {},
    stop: () => followed.stop(),
  };
}

export interface KafkaFeedOptions {
  readonly bus: EventBus;
  readonly topic: string;
  readonly groupId: string;
  /** "manual": positions committed by Feed.commit only; false: never (replay at each start). */
  readonly commit: false | "manual";
  readonly handle: FeedHandler;
}

export async function followKafkaTopic(o: KafkaFeedOptions): Promise<Feed> {
  const sub: Subscription = await o.bus.subscribe({
    groupId: o.groupId,
    topics: [o.topic],
    fromBeginning: true,
    commit: o.commit,
    handle: async (batch) => {
      await o.handle(
        batch.map((r) => ({
          topic: r.topic,
          partition: r.partition,
          offset: r.offset,
          next: BigInt(r.offset) + 1n,
          value: r.value,
          timestampMs: r.timestampMs,
        })),
      );
    },
  });
  return {
    source: `kafka:${o.topic}`,
    caughtUp: () => sub.caughtUp(),
    waitCaughtUp: (ms) => sub.waitCaughtUp(ms),
    freshAt: () => (sub.caughtUp() ? Date.now() : 0),
    async commit(through) {
      if (o.commit !== "manual" || through.length === 0) return;
      if (!sub.commit) throw new Error("this bus cannot commit positions manually");
      // The last record of each partition.
      const last = new Map<string, FeedPosition>();
      for (const r of through) {
        const key = `${r.topic}/${r.partition}`;
        const seen = last.get(key);
        if (!seen || r.next > seen.next) last.set(key, r);
      }
      await sub.commit([...last.values()]);
    },
    stop: () => sub.stop(),
  };
}
