/**
 * The online trainer's core: buffers samples, decides when an update is due
 * (policy.ts), writes the shard with each sample's history (shard.ts) and runs
 * the trainer's online update for each model (update.ts), then records how far
 * the samples were trained on (state.ts).
 *
 * - Histories are built when the shard is written, and only once the
 *   feedback consumer has read everything written before the update was due
 *   (`feedbackCaughtUp`), so a sample never misses feedback that preceded it
 *   merely because the samples topic was read first.
 * - An update consumes its samples when at least one model's trainer ran to a
 *   verdict on them: "published" or "rejected". Then the positions move past
 *   them (state file first, then the Kafka commit) and they are never trained
 *   on again, across restarts too.
 * - Otherwise (every model failed, timed out, or said "skipped", which means
 *   it did not train, e.g. no serving version yet or too small a holdout) the
 *   samples go back to the front of the buffer and are part of the next
 *   update. The buffer is bounded: beyond `maxBuffer` the oldest samples are
 *   dropped and counted.
 * - With several models, a model that fails while another one consumed the
 *   shard misses those samples (never trained twice beats never missed).
 */
import type { Logger, Metrics } from "@recsys/shared";
import type { UserHistories } from "./history.js";
import { OnlineMetrics } from "./metrics.js";
import { type TriggerPolicy, type TriggerReason, updateDue } from "./policy.js";
import { buildShard, pruneShards, type ShardSample, shardName, writeShard } from "./shard.js";
import { consumedUpTo, type OnlineState, readState, type UpdateSummary, writeState } from "./state.js";
import { type Decision, UpdateError, type UpdateResult } from "./update.js";

/** Decisions after which the samples count as trained on. */
export const CONSUMING_DECISIONS: ReadonlySet<Decision> = new Set(["published", "rejected"]);

export interface SamplePosition {
  /** Feed.source: the state file's key. */
  readonly source: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** Position just past the record. */
  readonly next: bigint;
}

export interface BufferedSample extends ShardSample, SamplePosition {}

export type SampleOutcome = "buffered" | "already_trained" | "duplicate" | "invalid";

export interface ModelOutcome {
  readonly decision: Decision | "failed" | "timeout";
  readonly result?: UpdateResult;
  readonly error?: string;
  readonly seconds: number;
}

export interface UpdateOutcome {
  readonly reason: TriggerReason;
  readonly shard: string;
  readonly samples: number;
  readonly consumed: boolean;
  readonly models: Readonly<Record<string, ModelOutcome>>;
}

export interface OnlineTrainerOptions {
  readonly dir: string;
  readonly statePath: string;
  readonly models: readonly string[];
  readonly policy: TriggerPolicy;
  readonly maxBuffer: number;
  readonly keepShards: number;
  readonly historyLength: number;
  readonly histories: UserHistories;
  /** Runs one model's online update on a shard; throws (UpdateError) when it fails. */
  readonly update: (model: string, shard: string, signal: AbortSignal) => Promise<UpdateResult>;
  /**
   * Resolves true once the feedback consumer has read everything written
   * before `sinceMs`; false when it has not yet (the update waits for the next tick).
   */
  readonly feedbackCaughtUp: (sinceMs: number) => Promise<boolean>;
  /** Commits consumed samples to the bus (Kafka consumer group). Failures are logged. */
  readonly commit?: (through: readonly BufferedSample[]) => Promise<void>;
  /** Called after a model published a new version (e.g. announces it on the model-versions topic). */
  readonly onPublished?: (model: string, result: UpdateResult) => Promise<void>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now?: () => number;
}

const key = (p: SamplePosition) => `${p.source}|${p.partition}|${p.offset}`;

export class OnlineTrainer {
  private state: OnlineState;
  private buffer: BufferedSample[] = [];
  private inflight: BufferedSample[] = [];
  /** Keys of the samples in `buffer` and `inflight` (a redelivered record is not buffered twice). */
  private readonly keys = new Set<string>();
  /** Sources whose log was re-created: samples up to the recorded time count as trained. */
  private readonly timeFloor = new Map<string, number>();
  private newSinceAttempt = 0;
  private lastAttemptAt: number;
  private running: Promise<UpdateOutcome | undefined> | undefined;
  private waitingForFeedbackSince = 0;
  private seq = 0;
  private readonly abort = new AbortController();
  private readonly m: OnlineMetrics;
  private readonly now: () => number;

  constructor(private readonly o: OnlineTrainerOptions) {
    this.now = o.now ?? Date.now;
    this.state = readState(o.statePath);
    this.lastAttemptAt = this.now();
    this.m = OnlineMetrics.of(o.metrics);
    this.m.buffered.set(0);
  }

  /** Where a source's partition resumes: just past the last consumed sample (0n: from the start). */
  resumeFrom(source: string, partition: number): bigint {
    return consumedUpTo(this.state, source, partition);
  }

  /**
   * The source's log was re-created from scratch (its end lies before the
   * recorded position): its positions restart at 0, and samples up to the
   * newest time already consumed from it are skipped.
   */
  resetSource(source: string): void {
    const floor = this.state.maxTimestampMs[source];
    if (floor !== undefined) this.timeFloor.set(source, floor);
    const positions = { ...this.state.positions };
    delete positions[source];
    this.state = { ...this.state, positions };
    writeState(this.o.statePath, this.state);
  }

  get bufferedCount(): number {
    return this.buffer.length + this.inflight.length;
  }

  get currentState(): OnlineState {
    return this.state;
  }

  get updating(): boolean {
    return this.running !== undefined;
  }

  addSample(sample: BufferedSample): SampleOutcome {
    if (
      !sample.userId ||
      !sample.itemId ||
      !Number.isFinite(sample.timestampMs) ||
      sample.timestampMs <= 0 ||
      !Object.values(sample.labels).every(Number.isFinite)
    ) {
      this.m.badRecords.inc({ topic: sample.topic });
      return "invalid";
    }
    const floor = this.timeFloor.get(sample.source);
    if (
      sample.next <= consumedUpTo(this.state, sample.source, sample.partition) ||
      (floor !== undefined && sample.timestampMs <= floor)
    ) {
      this.m.samples.inc({ outcome: "already_trained" });
      return "already_trained";
    }
    const k = key(sample);
    if (this.keys.has(k)) {
      this.m.samples.inc({ outcome: "duplicate" });
      return "duplicate";
    }
    this.keys.add(k);
    this.buffer.push(sample);
    this.newSinceAttempt++;
    this.m.samples.inc({ outcome: "buffered" });
    this.enforceBound();
    this.m.buffered.set(this.bufferedCount);
    return "buffered";
  }

  /**
   * Drops the oldest waiting samples beyond `maxBuffer`. Those of an update in
   * progress do not count (they are put back first if it does not consume them).
   */
  private enforceBound(): void {
    const excess = this.buffer.length - this.o.maxBuffer;
    if (excess <= 0) return;
    const dropped = this.buffer.splice(0, excess);
    for (const s of dropped) this.keys.delete(key(s));
    if (dropped.length > 0) {
      this.m.samples.inc({ outcome: "dropped" }, dropped.length);
      this.o.logger.warn(
        { dropped: dropped.length, maxBuffer: this.o.maxBuffer },
        "online buffer full: oldest samples dropped",
      );
    }
  }

  /** Whether an update is due now. */
  due(): TriggerReason | undefined {
    return updateDue(this.o.policy, {
      buffered: this.buffer.length,
      newSinceAttempt: this.newSinceAttempt,
      msSinceAttempt: this.now() - this.lastAttemptAt,
    });
  }

  /** Starts an update when one is due and none is running (called on a timer). */
  tick(): Promise<UpdateOutcome | undefined> | undefined {
    if (this.running || this.abort.signal.aborted) return undefined;
    const reason = this.due();
    if (!reason) return undefined;
    const run = this.update(reason).finally(() => {
      this.running = undefined;
    });
    this.running = run;
    return run;
  }

  /** Runs an update now (tests, or a due trigger); undefined when feedback has not caught up yet. */
  async update(reason: TriggerReason): Promise<UpdateOutcome | undefined> {
    const startedAt = this.now();
    if (!(await this.o.feedbackCaughtUp(startedAt))) {
      if (!this.waitingForFeedbackSince) {
        this.waitingForFeedbackSince = startedAt;
        this.o.logger.info(
          { buffered: this.buffer.length },
          "online update due: waiting for the feedback consumer to catch up",
        );
      }
      return undefined;
    }
    this.waitingForFeedbackSince = 0;
    const taken = this.buffer;
    this.buffer = [];
    this.inflight = taken;
    this.newSinceAttempt = 0;
    this.lastAttemptAt = startedAt;
    const log = this.o.logger;

    let shard: string;
    try {
      const lines = buildShard(taken, this.o.histories, this.o.historyLength);
      shard = writeShard(this.o.dir, shardName(startedAt, ++this.seq), lines);
    } catch (err) {
      log.error({ err, samples: taken.length }, "online update: cannot write the shard; samples kept");
      this.putBack(taken);
      return undefined;
    }
    log.info({ reason, samples: taken.length, shard, models: this.o.models }, "online update started");

    const models: Record<string, ModelOutcome> = {};
    for (const model of this.o.models) {
      if (this.abort.signal.aborted) break;
      const t0 = performance.now();
      let outcome: ModelOutcome;
      try {
        const result = await this.o.update(model, shard, this.abort.signal);
        const seconds = (performance.now() - t0) / 1000;
        outcome = { decision: result.decision, result, seconds };
        const at = this.now() / 1000;
        this.m.lastUpdate.set({ model }, at);
        if (result.decision === "published") this.m.lastPublish.set({ model }, at);
        log.info(
          {
            model,
            decision: result.decision,
            reason: result.reason,
            parentVersion: result.parentVersion,
            version: result.version,
            holdout: result.raw.holdout,
            samples: result.raw.samples,
            seconds: Math.round(seconds * 10) / 10,
          },
          `online update of ${model}: ${result.decision}`,
        );
        if (result.decision === "published" && this.o.onPublished) {
          await this.o
            .onPublished(model, result)
            .catch((err: unknown) =>
              log.warn({ err, model, version: result.version }, "announcing the new version failed"),
            );
        }
      } catch (err) {
        const seconds = (performance.now() - t0) / 1000;
        const kind = err instanceof UpdateError ? err.kind : "failed";
        outcome = { decision: kind, error: (err as Error).message, seconds };
        log.error(
          {
            model,
            err: (err as Error).message,
            stderr: err instanceof UpdateError ? err.stderrTail : undefined,
            seconds: Math.round(seconds * 10) / 10,
          },
          `online update of ${model} ${kind === "timeout" ? "timed out" : "failed"}; its samples are retried with the next update`,
        );
      }
      models[model] = outcome;
      this.m.updates.inc({ model, decision: outcome.decision });
      this.m.updateSeconds.observe({ model }, outcome.seconds);
    }

    const consumed = Object.values(models).some((r) => CONSUMING_DECISIONS.has(r.decision as Decision));
    const summary: UpdateSummary = {
      atMs: startedAt,
      shard,
      samples: taken.length,
      consumed,
      results: Object.fromEntries(
        Object.entries(models).map(([m, r]) => [
          m,
          { decision: r.decision, version: r.result?.version, reason: r.result?.reason ?? r.error },
        ]),
      ),
    };
    const keep = Math.max(this.o.keepShards, 1);
    let next: OnlineState = { ...this.state, recent: [...this.state.recent, summary].slice(-keep) };
    if (consumed) next = advance(next, taken);
    try {
      writeState(this.o.statePath, next);
      this.state = next;
    } catch (err) {
      // Without the state on disk a restart would train on these samples again; in this
      // process the positions still move (they are not re-read).
      this.state = next;
      log.error({ err, path: this.o.statePath }, "online update: cannot write the state file");
    }
    if (consumed) {
      for (const s of taken) this.keys.delete(key(s));
      this.inflight = [];
      this.m.samples.inc({ outcome: "consumed" }, taken.length);
      if (this.o.commit) {
        await this.o
          .commit(taken)
          .catch((err: unknown) =>
            log.warn({ err }, "committing the consumed samples failed (the state file still skips them)"),
          );
      }
    } else {
      this.putBack(taken);
    }
    this.m.buffered.set(this.bufferedCount);
    try {
      pruneShards(this.o.dir, this.o.keepShards);
    } catch (err) {
      log.warn({ err }, "pruning old shards failed");
    }
    return { reason, shard, samples: taken.length, consumed, models };
  }

  /** Samples of an update that did not consume them go back to the front of the buffer. */
  private putBack(taken: BufferedSample[]): void {
    this.buffer = taken.concat(this.buffer);
    this.inflight = [];
    this.enforceBound();
    this.m.buffered.set(this.bufferedCount);
  }

  /** Stops: kills a running update (its samples are retried after the restart) and waits for it. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }
}

/** The state after consuming `samples`: positions and newest times per source move forward. */
export function advance(state: OnlineState, samples: readonly BufferedSample[]): OnlineState {
  const positions: Record<string, Record<string, string>> = {};
  for (const [s, parts] of Object.entries(state.positions)) positions[s] = { ...parts };
  const maxTimestampMs = { ...state.maxTimestampMs };
  for (const s of samples) {
    const parts = (positions[s.source] ??= {});
    const p = String(s.partition);
    const cur = parts[p];
    if (cur === undefined || s.next > BigInt(cur)) parts[p] = s.next.toString();
    maxTimestampMs[s.source] = Math.max(maxTimestampMs[s.source] ?? 0, s.timestampMs);
  }
  return { ...state, positions, maxTimestampMs, updates: state.updates + 1 };
}
