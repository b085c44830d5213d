/**
 * Trending scores for the popular recall channel: engagement counts with
 * exponential time decay (half-life configurable), kept with "forward decay":
 * an event at time t adds weight * 2^((t - epoch) / halfLife), so old scores
 * never need rewriting; they only lose weight relative to new ones. The
 * decayed score at time `now` is stored / 2^((now - epoch) / halfLife).
 * When the exponent grows large the scores are rescaled and the epoch moved.
 *
 * Where recall reads them:
 *   Redis: ZSET `<prefix>trending` (item -> forward-decayed score, top N
 *     kept), HASH `<prefix>trending:meta` {epochMs, halfLifeMs}.
 *     ZREVRANGE <prefix>trending 0 N-1 gives the current top N (ranking needs
 *     no rescaling).
 *   Embedded: a JSON snapshot file (RECSYS_TRENDING_FILE), rewritten
 *     atomically every few seconds: {updatedAtMs, halfLifeMs, items: [{itemId, score}]}
 *     with scores decayed to updatedAtMs, best first.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { type HistoryRow, isPositiveEvent, type Logger } from "@recsys/shared";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import type { RedisClient } from "@recsys/shared/userstate-redis";

export interface TrendingSink {
  readonly kind: string;
  add(events: readonly HistoryRow[]): Promise<void>;
  /** Writes what is buffered (file snapshot; Redis trim). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** How much one event counts towards an item's trend (0: not at all). */
/**
 * The time an event counts at: never later than now. An event stamped in the future (a producer's
 * bad clock; the gateway refuses more than a day ahead, other producers may not) would otherwise
 * outweigh everything, and one stamped a century ahead made every score NaN.
 */
export function eventTime(e: Pick<HistoryRow, "timestampMs">, nowMs: number): number {
  return Number.isFinite(e.timestampMs) ? Math.min(e.timestampMs, nowMs) : nowMs;
}

export function trendingWeight(e: HistoryRow): number {
  if (!isPositiveEvent(e, 4)) return 0;
  switch (e.type) {
    case EventType.LIKE:
    case EventType.SHARE:
      return 2;
    default:
      return 1;
  }
}

/** Rescale once scores carry more than 2^this. */
const MAX_EXPONENT = 64;

export class FileTrendingSink implements TrendingSink {
  readonly kind = "file";
  private readonly scores = new Map<string, number>();
  private epochMs = Date.now();
  private dirty = false;

  constructor(
    private readonly path: string,
    private readonly halfLifeMs: number,
    private readonly top: number,
  ) {}

  async add(events: readonly HistoryRow[]): Promise<void> {
    const now = Date.now();
    for (const e of events) {
      const w = trendingWeight(e);
      if (w === 0) continue;
      const t = eventTime(e, now);
      this.rebaseIfNeeded(t);
      const boost = w * 2 ** ((t - this.epochMs) / this.halfLifeMs);
      this.scores.set(e.itemId, (this.scores.get(e.itemId) ?? 0) + boost);
      this.dirty = true;
    }
  }

  private rebaseIfNeeded(timestampMs: number): void {
    const exponent = (timestampMs - this.epochMs) / this.halfLifeMs;
    if (exponent < MAX_EXPONENT) return;
    const factor = 2 ** -exponent;
    for (const [k, v] of this.scores) this.scores.set(k, v * factor);
    this.epochMs = timestampMs;
  }

  /** Current decayed scores, best first. */
  snapshot(nowMs = Date.now()): Array<{ itemId: string; score: number }> {
    const scale = 2 ** ((this.epochMs - nowMs) / this.halfLifeMs);
    return [...this.scores]
      .map(([itemId, s]) => ({ itemId, score: s * scale }))
      .sort((a, b) => b.score - a.score)
      .slice(0, this.top);
  }

  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const now = Date.now();
    const items = this.snapshot(now);
    // Keep memory bounded: forget items far below the top.
    if (this.scores.size > this.top * 4) {
      const keep = new Set(items.map((i) => i.itemId));
      for (const k of this.scores.keys()) if (!keep.has(k)) this.scores.delete(k);
    }
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify({ updatedAtMs: now, halfLifeMs: this.halfLifeMs, items }));
    renameSync(tmp, this.path);
  }

  async close(): Promise<void> {
    await this.flush();
  }
}

/**
 * KEYS: zset, meta. ARGV: halfLifeMs, now, maxExponent, then (itemId, weight,
 * timestampMs) triples. Reads (or sets) the epoch, rescales when needed, adds.
 */
const TRENDING_ADD_LUA = `
local half = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local epoch = tonumber(redis.call('HGET', KEYS[2], 'epochMs'))
if not epoch then
  epoch = now
  redis.call('HSET', KEYS[2], 'epochMs', epoch, 'halfLifeMs', half)
end
local exponent = (now - epoch) / half
if exponent > tonumber(ARGV[3]) then
  redis.call('ZUNIONSTORE', KEYS[1], 1, KEYS[1], 'WEIGHTS', 2 ^ (-exponent))
  epoch = now
  redis.call('HSET', KEYS[2], 'epochMs', epoch, 'halfLifeMs', half)
end
for i = 4, #ARGV, 3 do
  local boost = tonumber(ARGV[i + 1]) * 2 ^ ((tonumber(ARGV[i + 2]) - epoch) / half)
  redis.call('ZINCRBY', KEYS[1], boost, ARGV[i])
end
return epoch
`;

export class RedisTrendingSink implements TrendingSink {
  readonly kind = "redis";
  readonly key: string;
  readonly metaKey: string;

  constructor(
    private readonly client: RedisClient,
    prefix: string,
    private readonly halfLifeMs: number,
    private readonly top: number,
    private readonly logger: Logger,
  ) {
    this.key = `${prefix}trending`;
    this.metaKey = `${prefix}trending:meta`;
  }

  async add(events: readonly HistoryRow[]): Promise<void> {
    const now = Date.now();
    const args = [String(this.halfLifeMs), String(now), String(MAX_EXPONENT)];
    for (const e of events) {
      const w = trendingWeight(e);
      if (w > 0) args.push(e.itemId, String(w), String(eventTime(e, now)));
    }
    if (args.length === 3) return;
    await this.client.eval(TRENDING_ADD_LUA, { keys: [this.key, this.metaKey], arguments: args });
  }

  async flush(): Promise<void> {
    try {
      await this.client.zRemRangeByRank(this.key, 0, -this.top - 1);
    } catch (err) {
      this.logger.warn({ err }, "trending: trim failed");
    }
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
