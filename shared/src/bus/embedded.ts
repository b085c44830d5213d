/**
 * The embedded event bus: the single-machine default, with no broker. Each
 * topic is an EmbeddedLog under `<dir>/topics/<topic>/`; each consumer
 * group's positions are a small JSON file under `<dir>/groups/`, replaced
 * atomically after every handled batch. Nothing acknowledged is lost across a
 * restart: `publish` resolves after fsync (unless `sync: false`).
 *
 * One process owns a bus directory (a lock file says which); its consumers
 * run in that process. That is why, in embedded mode, the gateway runs the
 * stream processor in-process (see docs/event-bus.md).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.js";
import { EmbeddedLog, type LogOptions } from "./log.js";
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

export interface EmbeddedBusOptions extends LogOptions {
  readonly dir: string;
  readonly logger: Logger;
  readonly metrics?: BusMetrics;
  /** Largest batch handed to a consumer, bytes. */
  readonly maxBatchBytes?: number;
  /**
   * Automatic commits write the group's position file at most this often
   * (and when the consumer stops), not after every batch: a consumer that
   * keeps up with a steady trickle (the gateway's in-process stream reads
   * each Recommend's impression) would otherwise rewrite the file on its
   * event loop for every record. A crash re-delivers at most this much plus
   * one idle wait (~1 s): at least once, as always. Default 1,000 ms; 0
   * commits after every batch.
   */
  readonly commitIntervalMs?: number;
}

export class EmbeddedBus implements EventBus {
  readonly kind = "embedded" as const;
  private readonly logs = new Map<string, Promise<EmbeddedLog>>();
  private readonly subscriptions = new Set<EmbeddedSubscription>();
  private readonly lockPath: string;

  private constructor(private readonly options: EmbeddedBusOptions) {
    this.lockPath = join(options.dir, "LOCK");
  }

  static open(options: EmbeddedBusOptions): EmbeddedBus {
    mkdirSync(join(options.dir, "groups"), { recursive: true });
    const bus = new EmbeddedBus(options);
    bus.lock();
    return bus;
  }

  /** Refuses a directory that another live process holds. */
  private lock(): void {
    try {
      const holder = Number(readFileSync(this.lockPath, "utf8"));
      if (holder && holder !== process.pid && isAlive(holder)) {
        throw new Error(
          `embedded bus ${this.options.dir} is in use by process ${holder}; ` +
            "give each process its own RECSYS_BUS_DIR, or use Kafka (RECSYS_KAFKA_BROKERS)",
        );
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    writeFileSync(this.lockPath, String(process.pid));
  }

  log(topic: string): Promise<EmbeddedLog> {
    let log = this.logs.get(topic);
    if (!log) {
      log = EmbeddedLog.open(topicDir(this.options.dir, topic), {
        ...this.options,
        onDamage: (damage) => {
          this.options.logger.error(
            { ...damage, topic },
            "embedded bus: a damaged region of the topic log was quarantined (its bytes are in quarantinedTo)",
          );
          this.options.metrics?.logDamage.inc({ log: `embedded:${topic}` });
          this.options.onDamage?.(damage);
        },
      });
      this.logs.set(topic, log);
    }
    return log;
  }

  async ensureTopics(topics: readonly string[]): Promise<void> {
    await Promise.all(topics.map((t) => this.log(t)));
  }

  async publish(topic: string, records: readonly BusRecord[], options: PublishOptions = {}): Promise<void> {
    const log = await this.log(topic);
    const t0 = performance.now();
    await log.append(records, options.sync ?? true);
    this.options.metrics?.published(topic, "embedded", records.length, (performance.now() - t0) / 1000);
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const logs = await Promise.all(options.topics.map(async (t) => [t, await this.log(t)] as const));
    const sub = new EmbeddedSubscription(
      options,
      new Map(logs),
      join(this.options.dir, "groups", `${safeName(options.groupId)}.json`),
      this.options,
    );
    this.subscriptions.add(sub);
    sub.start();
    return {
      caughtUp: () => sub.caughtUp(),
      waitCaughtUp: (ms) => sub.waitCaughtUp(ms),
      commit: (through) => sub.commitThrough(through),
      stop: async () => {
        this.subscriptions.delete(sub);
        await sub.stop();
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    this.subscriptions.clear();
    for (const log of this.logs.values()) await (await log).close();
    this.logs.clear();
    try {
      if (Number(readFileSync(this.lockPath, "utf8")) === process.pid) rmSync(this.lockPath);
    } catch {
      // already gone
    }
  }
}

class EmbeddedSubscription {
  private readonly positions = new Map<string, number>();
  /** Positions in the group's file (commit: "manual" moves them only in commitThrough). */
  private readonly committed = new Map<string, number>();
  private readonly startEnds = new Map<string, number>();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private caughtUpWaiters: Array<() => void> = [];
  /** Automatic commits: positions handled but not yet written, and when the file was last written. */
  private dirty = false;
  private lastCommitAt = performance.now();

  constructor(
    private readonly options: SubscribeOptions,
    private readonly logs: Map<string, EmbeddedLog>,
    private readonly positionsFile: string,
    private readonly bus: EmbeddedBusOptions,
  ) {
    const committed = options.commit === false ? {} : readPositions(positionsFile);
    for (const [topic, log] of logs) {
      this.startEnds.set(topic, log.endOffset);
      const saved = committed[topic];
      const start = saved !== undefined ? saved : options.fromBeginning ? log.startOffset : log.endOffset;
      this.positions.set(topic, start);
      this.committed.set(topic, start);
    }
  }

  start(): void {
    this.loop = this.run();
  }

  caughtUp(): boolean {
    for (const [topic, end] of this.startEnds) if ((this.positions.get(topic) ?? 0) < end) return false;
    return true;
  }

  async waitCaughtUp(timeoutMs: number): Promise<boolean> {
    if (this.caughtUp()) return true;
    let resolveWaiter: () => void = () => {};
    const reached = new Promise<void>((r) => {
      resolveWaiter = r;
      this.caughtUpWaiters.push(r);
    });
    await Promise.race([reached, pause(timeoutMs)]);
    this.caughtUpWaiters = this.caughtUpWaiters.filter((w) => w !== resolveWaiter);
    return this.caughtUp();
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    const maxBytes = this.bus.maxBatchBytes ?? 512 * 1024;
    let failures = 0;
    while (!signal.aborted) {
      let idle = true;
      for (const [topic, log] of this.logs) {
        if (signal.aborted) break;
        const from = this.positions.get(topic) ?? 0;
        if (from >= log.endOffset) continue;
        try {
          const { records, next } = await log.read(from, maxBytes);
          if (next === from) continue;
          idle = false;
          const batch: ConsumedRecord[] = records.map((r) => ({
            topic,
            partition: 0,
            offset: String(r.offset),
            key: r.key,
            value: r.value,
            timestampMs: r.timestampMs,
          }));
          if (batch.length > 0) await this.options.handle(batch);
          this.positions.set(topic, next);
          if (this.options.commit === undefined || this.options.commit === true) {
            this.committed.set(topic, next);
            this.dirty = true;
            this.commitIfDue();
          }
          this.bus.metrics?.consumed(this.options.groupId, topic, batch.length);
          failures = 0;
        } catch (err) {
          failures++;
          this.bus.logger.error(
            { err, groupId: this.options.groupId, topic, offset: from },
            "embedded bus: batch failed, retrying",
          );
          await pause(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)), signal);
        }
      }
      if (this.caughtUp() && this.caughtUpWaiters.length > 0) {
        for (const w of this.caughtUpWaiters.splice(0)) w();
      }
      if (idle) {
        this.commitIfDue(); // a quiet consumer still writes its position within the interval
        // Whichever wakes first ends the others' waits too: otherwise every idle turn
        // leaves a waiter and a timer behind on each quiet topic for up to a second.
        const wake = new AbortController();
        const onStop = () => wake.abort();
        signal.addEventListener("abort", onStop, { once: true });
        try {
          await Promise.race([
            ...[...this.logs].map(([topic, log]) =>
              log.waitForData(this.positions.get(topic) ?? 0, 1_000, wake.signal),
            ),
            pause(1_000, wake.signal),
          ]);
        } finally {
          signal.removeEventListener("abort", onStop);
          wake.abort();
        }
      }
    }
  }

  private commitIfDue(): void {
    if (this.dirty && performance.now() - this.lastCommitAt >= (this.bus.commitIntervalMs ?? 1_000))
      this.commit();
  }

  private commit(): void {
    const tmp = `${this.positionsFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.committed)));
    renameSync(tmp, this.positionsFile);
    this.dirty = false;
    this.lastCommitAt = performance.now();
  }

  /** commit: "manual": the position just past each record (read back from the log). */
  async commitThrough(through: readonly RecordPosition[]): Promise<void> {
    if (this.options.commit !== "manual")
      throw new Error('commit() needs a subscription with commit: "manual"');
    let moved = false;
    for (const r of through) {
      const log = this.logs.get(r.topic);
      if (!log) throw new Error(`commit: ${r.topic} is not a topic of this subscription`);
      const { records } = await log.read(Number(r.offset), 1);
      const record = records[0];
      if (!record || record.offset !== Number(r.offset))
        throw new Error(`commit: no record at ${r.topic}@${r.offset} (deleted by retention?)`);
      if (record.nextOffset > (this.committed.get(r.topic) ?? 0)) {
        this.committed.set(r.topic, record.nextOffset);
        moved = true;
      }
    }
    if (moved) this.commit();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (this.dirty) this.commit();
  }
}

function readPositions(path: string): Record<string, number> {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, number>;
  } catch {
    return {};
  }
}

/** Directory of `topic`'s log inside an embedded bus directory. */
export function topicDir(busDir: string, topic: string): string {
  return join(busDir, "topics", safeName(topic));
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_");
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
