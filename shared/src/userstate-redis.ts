/**
 * The user-state store on Redis (node-redis), used when RECSYS_REDIS_URL is
 * set. The stream service writes it; gateways read it.
 *
 * Keys (the `{userId}` hash tag keeps a user's keys in one cluster slot):
 *   <prefix>u:{<user>}:seq    LIST   recent events, oldest first, bounded:
 *                                    "type|timestampMs|value|itemId"
 *   <prefix>u:{<user>}:seen   ZSET   items interacted with, score = last time (ms), bounded
 *   <prefix>u:{<user>}:ev     ZSET   event ids applied, score = when (ms); ids older
 *                                    than the de-duplication window are trimmed
 *   <prefix>u:{<user>}:seed   STRING dataset tag once the user's history was imported
 *   <prefix>users             HLL    users seen (approximate count for logs)
 *   <prefix>seeded:<tag>      STRING set when a whole dataset import finished
 *
 * Reads fail fast: no offline queue (a command fails at once while
 * disconnected) and a per-command timeout, so a Recommend call degrades
 * ("user_state_unavailable") instead of hanging when Redis is down.
 */
import { createClient } from "redis";
import type { Interaction } from "./data/dataset.js";
import type { HistoryRow } from "./funnel/types.js";
import { EventType } from "./gen/recsys/common/v1/common_pb.js";
import type { Logger } from "./log.js";
import type { UserEvent, UserState, UserStateStore } from "./userstate.js";

export interface RedisUserStateOptions {
  readonly url: string;
  readonly logger: Logger;
  /** Key prefix, e.g. "recsys:". */
  readonly prefix?: string;
  readonly maxSequenceLength?: number;
  readonly maxSeenItems?: number;
  /** Per-command timeout; reads on the request path should be a few ms. */
  readonly timeoutMs?: number;
  /** How long an applied event id is remembered for de-duplication. */
  readonly eventIdTtlMs?: number;
  /** At most this many event ids remembered per user. */
  readonly maxEventIds?: number;
}

export type RedisClient = ReturnType<typeof createClient>;

const FIELD_SEPARATOR = "|";

/**
 * KEYS: seq, seen, ev. ARGV: now, maxSeq, maxSeen, evTtlMs, maxEventIds, then
 * one (eventId, encodedRow, itemId, timestampMs) quadruple per event.
 * Returns the event ids applied now.
 */
const APPEND_ONCE_LUA = `
local now = tonumber(ARGV[1])
local applied = {}
for i = 6, #ARGV, 4 do
  if redis.call('ZADD', KEYS[3], 'NX', now, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    redis.call('ZADD', KEYS[2], tonumber(ARGV[i + 3]), ARGV[i + 2])
    applied[#applied + 1] = ARGV[i]
  end
end
if #applied > 0 then
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
  local seen = redis.call('ZCARD', KEYS[2])
  if seen > tonumber(ARGV[3]) then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, seen - tonumber(ARGV[3]) - 1) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))
local ids = redis.call('ZCARD', KEYS[3])
if ids > tonumber(ARGV[5]) then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, ids - tonumber(ARGV[5]) - 1) end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return applied
`;

/**
 * KEYS: seq, seen, seed. ARGV: tag, maxSeq, maxSeen, then (row, itemId,
 * timestampMs) triples, oldest first. Prepends a user's imported history once
 * per dataset tag, before anything the stream already appended.
 */
const SEED_USER_LUA = `
if redis.call('SET', KEYS[3], ARGV[1], 'NX') == false then return 0 end
for i = #ARGV - 2, 4, -3 do
  redis.call('LPUSH', KEYS[1], ARGV[i])
  redis.call('ZADD', KEYS[2], 'NX', tonumber(ARGV[i + 2]), ARGV[i + 1])
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
local seen = redis.call('ZCARD', KEYS[2])
if seen > tonumber(ARGV[3]) then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, seen - tonumber(ARGV[3]) - 1) end
return 1
`;

export class RedisUserStateStore implements UserStateStore {
  readonly kind = "redis";
  readonly prefix: string;
  private readonly maxSequenceLength: number;
  private readonly maxSeenItems: number;
  private readonly eventIdTtlMs: number;
  private readonly maxEventIds: number;

  private constructor(
    readonly client: RedisClient,
    options: RedisUserStateOptions,
  ) {
    this.prefix = options.prefix ?? "recsys:";
    this.maxSequenceLength = options.maxSequenceLength ?? 256;
    this.maxSeenItems = options.maxSeenItems ?? 10_000;
    this.eventIdTtlMs = options.eventIdTtlMs ?? 7 * 24 * 3600 * 1000;
    this.maxEventIds = options.maxEventIds ?? 4_096;
  }

  /**
   * Creates the store and starts connecting. Resolves once connected or after
   * `waitMs`, whichever is first: a Redis that is down at start-up only makes
   * reads fail (fast) until it is back; the client keeps reconnecting.
   */
  static async connect(options: RedisUserStateOptions, waitMs = 3_000): Promise<RedisUserStateStore> {
    const timeoutMs = options.timeoutMs ?? 50;
    const client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      commandOptions: { timeout: timeoutMs },
      socket: {
        connectTimeout: Math.max(500, timeoutMs),
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 5), 1_000),
      },
    });
    let lastError = "";
    client.on("error", (err: Error) => {
      // node-redis emits an error per failed reconnect; log each distinct one once.
      if (err.message !== lastError) options.logger.warn({ err }, "redis client error");
      lastError = err.message;
    });
    client.on("ready", () => {
      if (lastError) options.logger.info("redis connection restored");
      lastError = "";
    });
    const connecting = client.connect().catch((err: unknown) => {
      options.logger.warn({ err }, "redis: first connection failed; retrying in the background");
    });
    await Promise.race([connecting, new Promise((r) => setTimeout(r, waitMs).unref())]);
    return new RedisUserStateStore(client as RedisClient, options);
  }

  private keys(userId: string) {
    const base = `${this.prefix}u:{${userId}}`;
    return { seq: `${base}:seq`, seen: `${base}:seen`, ev: `${base}:ev`, seed: `${base}:seed` };
  }

  private requireReady(): void {
    if (!this.client.isReady) throw new Error("redis is not connected");
  }

  async get(userId: string, maxEvents = this.maxSequenceLength): Promise<UserState> {
    this.requireReady();
    const k = this.keys(userId);
    const [rows, seen] = (await this.client
      .multi()
      .lRange(k.seq, -Math.max(1, maxEvents), -1)
      .zRange(k.seen, 0, -1)
      .exec()) as unknown as [string[], string[]];
    if (rows.length === 0 && seen.length === 0) return { known: false, history: [], earlierSeenItemIds: [] };
    const history = rows.map(decodeRow).filter((r): r is HistoryRow => r !== undefined);
    const inHistory = new Set(history.map((e) => e.itemId));
    return { known: true, history, earlierSeenItemIds: seen.filter((id) => !inHistory.has(id)) };
  }

  async append(userId: string, events: readonly HistoryRow[]): Promise<void> {
    if (events.length === 0) return;
    this.requireReady();
    const k = this.keys(userId);
    const multi = this.client
      .multi()
      .rPush(
        k.seq,
        events.map((e) => encodeRow(e)),
      )
      .lTrim(k.seq, -this.maxSequenceLength, -1)
      .zAdd(
        k.seen,
        events.map((e) => ({ score: e.timestampMs, value: e.itemId })),
      )
      .zRemRangeByRank(k.seen, 0, -this.maxSeenItems - 1)
      .pfAdd(`${this.prefix}users`, userId);
    await multi.exec();
  }

  async appendOnce(userId: string, events: readonly UserEvent[]): Promise<UserEvent[]> {
    if (events.length === 0) return [];
    this.requireReady();
    const k = this.keys(userId);
    const args = [
      String(Date.now()),
      String(this.maxSequenceLength),
      String(this.maxSeenItems),
      String(this.eventIdTtlMs),
      String(this.maxEventIds),
    ];
    for (const e of events) args.push(e.eventId, encodeRow(e), e.itemId, String(e.timestampMs));
    const applied = new Set(
      (await this.client.eval(APPEND_ONCE_LUA, { keys: [k.seq, k.seen, k.ev], arguments: args })) as string[],
    );
    if (applied.size > 0) await this.client.pfAdd(`${this.prefix}users`, userId);
    const fresh: UserEvent[] = [];
    for (const e of events) {
      // An id may repeat inside one batch: only its first occurrence was applied.
      if (applied.delete(e.eventId)) fresh.push(e);
    }
    return fresh;
  }

  async size(): Promise<number> {
    this.requireReady();
    return this.client.pfCount(`${this.prefix}users`);
  }

  /**
   * Imports the dataset's histories once per `tag` (idempotent per user, and
   * placed before anything the stream already appended). Returns the number
   * of users imported now; 0 when the tag was already complete.
   */
  async seedOnce(tag: string, interactions: readonly Interaction[]): Promise<number> {
    this.requireReady();
    const doneKey = `${this.prefix}seeded:${tag}`;
    if ((await this.client.get(doneKey)) !== null) return 0;
    const byUser = new Map<string, Interaction[]>();
    for (const r of interactions) {
      let rows = byUser.get(r.userId);
      if (!rows) byUser.set(r.userId, (rows = []));
      rows.push(r);
    }
    let imported = 0;
    const users = [...byUser];
    const chunk = 64;
    for (let i = 0; i < users.length; i += chunk) {
      const results = await Promise.all(
        users.slice(i, i + chunk).map(async ([userId, rows]) => {
          const recent = rows.slice(-this.maxSequenceLength);
          const older = rows.slice(0, -this.maxSequenceLength).slice(-this.maxSeenItems);
          const k = this.keys(userId);
          const args = [tag, String(this.maxSequenceLength), String(this.maxSeenItems)];
          for (const r of recent) {
            const row: HistoryRow = {
              itemId: r.itemId,
              timestampMs: r.timestampMs,
              type: EventType.RATING,
              value: r.rating,
            };
            args.push(encodeRow(row), r.itemId, String(r.timestampMs));
          }
          const done = await this.client.eval(SEED_USER_LUA, {
            keys: [k.seq, k.seen, k.seed],
            arguments: args,
          });
          if (done === 1 && older.length > 0) {
            // Items before the kept sequence still count as seen.
            await this.client.zAdd(
              k.seen,
              older.map((r) => ({ score: r.timestampMs, value: r.itemId })),
              { condition: "NX" },
            );
            await this.client.zRemRangeByRank(k.seen, 0, -this.maxSeenItems - 1);
          }
          await this.client.pfAdd(`${this.prefix}users`, userId);
          return done === 1 ? 1 : 0;
        }),
      );
      imported += results.reduce<number>((a, b) => a + b, 0);
    }
    await this.client.set(doneKey, String(Date.now()));
    return imported;
  }

  async close(): Promise<void> {
    if (this.client.isOpen) await this.client.close().catch(() => {});
    else this.client.destroy();
  }
}

/**
 * Wraps a remote store: when a read fails, answers with the last state this
 * process read for the user, marked `unavailable`, so Recommend degrades with
 * the history it can get instead of none. Users never read before still fail.
 * Writes pass through.
 */
export class StaleOnErrorUserStateStore implements UserStateStore {
  readonly kind: string;
  private readonly lastKnown = new Map<string, UserState>();

  constructor(
    private readonly inner: UserStateStore,
    private readonly maxUsers = 10_000,
  ) {
    this.kind = inner.kind;
  }

  async get(userId: string, maxEvents?: number): Promise<UserState> {
    try {
      const state = await this.inner.get(userId, maxEvents);
      this.lastKnown.delete(userId); // re-insert: most recently read last
      this.lastKnown.set(userId, state);
      if (this.lastKnown.size > this.maxUsers)
        this.lastKnown.delete(this.lastKnown.keys().next().value as string);
      return state;
    } catch (err) {
      const last = this.lastKnown.get(userId);
      if (!last) throw err;
      return { ...last, unavailable: true };
    }
  }

  append(userId: string, events: readonly HistoryRow[]): Promise<void> {
    return this.inner.append(userId, events);
  }

  appendOnce(userId: string, events: readonly UserEvent[]): Promise<UserEvent[]> {
    return this.inner.appendOnce(userId, events);
  }

  size(): Promise<number> {
    return this.inner.size();
  }
}

function encodeRow(e: HistoryRow): string {
  return `${e.type}${FIELD_SEPARATOR}${e.timestampMs}${FIELD_SEPARATOR}${e.value}${FIELD_SEPARATOR}${e.itemId}`;
}

function decodeRow(s: string): HistoryRow | undefined {
  const a = s.indexOf(FIELD_SEPARATOR);
  const b = s.indexOf(FIELD_SEPARATOR, a + 1);
  const c = s.indexOf(FIELD_SEPARATOR, b + 1);
  if (a < 0 || b < 0 || c < 0) return undefined;
  return {
    type: Number(s.slice(0, a)) as EventType,
    timestampMs: Number(s.slice(a + 1, b)),
    value: Number(s.slice(b + 1, c)),
    itemId: s.slice(c + 1),
  };
}
