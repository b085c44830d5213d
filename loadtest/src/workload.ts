/**
 * The traffic itself: who asks for what, and how each answer is checked.
 *
 * - Users are drawn from the dataset's activity distribution (weight = the
 *   user's interaction count), so heavy users are asked for as often as they
 *   would be in production, with their long histories.
 * - Queries are built once, up front, from item titles and genres of items
 *   drawn by popularity.
 * - Feedback reports 1-5 events on items recently recommended to that user,
 *   with the request id of the answer that showed them.
 * - Catalog upserts add synthetic `loadtest-*` items (only when the target
 *   serves CatalogService).
 *
 * Messages are built as plain protobuf-es message objects (no `create()`
 * copies), sent with grpc-js callbacks (no promises), and checked without
 * building intermediate arrays: the runner shares two cores with the funnel.
 */
import { Client, credentials, type MethodDefinition, type ServiceError, status } from "@grpc/grpc-js";
import { grpcServiceDefinition, loadInteractions, loadItems } from "@recsys/shared";
import {
  CatalogService,
  type Item,
  type UpsertItemsRequest,
  type UpsertItemsResponse,
} from "@recsys/shared/gen/recsys/catalog/v1/catalog_service_pb.js";
import { EventType } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import {
  type FeedbackEvent,
  FeedbackService,
  type RecommendRequest,
  type RecommendResponse,
  RecommendService,
  type ReportRequest,
  type ReportResponse,
} from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import type { ExecName, ExecParams } from "./scenario.js";

/** Called once per request: status code, failed-check bit mask, degradations flagged by the answer. */
export type Done = (code: number, failedChecks: number, degradations: readonly string[] | null) => void;

export interface Exec {
  /** The `method` tag, e.g. "Recommend". */
  readonly method: string;
  /** Check names; index i is bit i of `failedChecks`. Index 0 is always "status is OK". */
  readonly checks: readonly string[];
  send(deadlineMs: number, done: Done): void;
}

/** Users weighted by activity, items by popularity, and the query pool. */
export class TrafficData {
  private constructor(
    readonly users: readonly string[],
    private readonly userCum: Float64Array,
    readonly items: ReadonlyArray<{
      itemId: string;
      title: string;
      genres: readonly string[];
      year?: number;
    }>,
    private readonly itemCum: Float64Array,
    readonly queries: readonly string[],
    readonly random: () => number,
  ) {}

  static async load(dataDir: string, random: () => number, queryPool = 2_000): Promise<TrafficData> {
    const [interactions, items] = await Promise.all([loadInteractions(dataDir), loadItems(dataDir)]);
    const perUser = new Map<string, number>();
    const perItem = new Map<string, number>();
    for (const r of interactions) {
      perUser.set(r.userId, (perUser.get(r.userId) ?? 0) + 1);
      perItem.set(r.itemId, (perItem.get(r.itemId) ?? 0) + 1);
    }
    if (perUser.size === 0) throw new Error(`${dataDir}: no interactions`);
    const users = [...perUser.keys()];
    const userCum = cumulative(users.map((u) => perUser.get(u)!));
    // Items weighted by popularity, +1 so that every item can be drawn.
    const itemCum = cumulative(items.map((it) => (perItem.get(it.itemId) ?? 0) + 1));
    const data = new TrafficData(users, userCum, items, itemCum, [], random);
    const queries: string[] = [];
    for (let i = 0; i < queryPool; i++) queries.push(buildQuery(data.pickItem(), random));
    return new TrafficData(users, userCum, items, itemCum, queries, random);
  }

  pickUser(): string {
    return this.users[pickIndex(this.userCum, this.random())]!;
  }

  pickItem(): { itemId: string; title: string; genres: readonly string[]; year?: number } {
    return this.items[pickIndex(this.itemCum, this.random())]!;
  }

  pickQuery(): string {
    return this.queries[Math.floor(this.random() * this.queries.length)]!;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }
}

function cumulative(weights: readonly number[]): Float64Array {
  const out = new Float64Array(weights.length);
  let acc = 0;
  for (let i = 0; i < weights.length; i++) out[i] = acc += weights[i]!;
  return out;
}

/** Index i with probability weight_i / total (binary search in the cumulative weights). */
export function pickIndex(cum: Float64Array, u: number): number {
  const target = u * cum[cum.length - 1]!;
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const STOP_WORDS = new Set([
  "the",
  "a",
  "an",
  "of",
  "and",
  "in",
  "on",
  "to",
  "for",
  "with",
  "la",
  "le",
  "les",
  "de",
]);

/** A short free-text query like a user would type: a genre, title words, or both. */
export function buildQuery(item: { title: string; genres: readonly string[] }, random: () => number): string {
  const words = item.title
    .toLowerCase()
    .replace(/\(.*?\)/g, " ")
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length > 1 && !STOP_WORDS.has(w));
  const genre = item.genres.length
    ? item.genres[Math.floor(random() * item.genres.length)]!.toLowerCase()
    : "";
  const titlePart = words
    .slice(0, 1 + Math.floor(random() * Math.min(3, Math.max(1, words.length))))
    .join(" ");
  const form = random();
  if ((form < 0.35 && genre) || !titlePart) return genre || "movie";
  if (form < 0.8 || !genre) return titlePart;
  return `${genre} ${titlePart}`;
}

/** Recent Recommend answers, so feedback is about items the user was actually shown. */
export class RecentRecommendations {
  private readonly users: string[];
  private readonly requestIds: string[];
  private readonly items: RecommendResponse["items"][];
  private n = 0;

  constructor(private readonly capacity = 1_024) {
    this.users = new Array<string>(capacity);
    this.requestIds = new Array<string>(capacity);
    this.items = new Array<RecommendResponse["items"]>(capacity);
  }

  push(userId: string, requestId: string, items: RecommendResponse["items"]): void {
    if (items.length === 0) return;
    const i = this.n++ % this.capacity;
    this.users[i] = userId;
    this.requestIds[i] = requestId;
    this.items[i] = items;
  }

  get size(): number {
    return Math.min(this.n, this.capacity);
  }

  /** One of the most recent answers (uniform over the ring), or undefined before the first. */
  pick(
    random: () => number,
  ): { userId: string; requestId: string; items: RecommendResponse["items"] } | undefined {
    const size = this.size;
    if (size === 0) return undefined;
    const i = Math.floor(random() * size);
    return { userId: this.users[i]!, requestId: this.requestIds[i]!, items: this.items[i]! };
  }
}

/** One grpc-js channel per target, shared by every scenario that talks to it. */
export class Channels {
  private readonly clients = new Map<string, Client>();

  get(target: string): Client {
    let c = this.clients.get(target);
    if (!c) {
      c = new Client(target, credentials.createInsecure(), {
        "grpc.max_receive_message_length": 16 * 1024 * 1024,
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 2_000,
      });
      this.clients.set(target, c);
    }
    return c;
  }

  async waitForReady(target: string, timeoutMs: number): Promise<void> {
    const c = this.get(target);
    await new Promise<void>((resolve, reject) =>
      c.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
    );
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

type Def = MethodDefinition<unknown, unknown>;
const recommendDef = grpcServiceDefinition(RecommendService).recommend as Def;
const reportDef = grpcServiceDefinition(FeedbackService).report as Def;
const upsertDef = grpcServiceDefinition(CatalogService).upsertItems as Def;

function unary<Res>(
  client: Client,
  def: Def,
  request: unknown,
  deadlineMs: number,
  cb: (err: ServiceError | null, res?: Res) => void,
): void {
  client.makeUnaryRequest(
    def.path,
    def.requestSerialize,
    def.responseDeserialize,
    request,
    { deadline: deadlineMs },
    cb as (err: ServiceError | null, res?: unknown) => void,
  );
}

export interface ExecContext {
  readonly data: TrafficData;
  readonly recent: RecentRecommendations;
  readonly channels: Channels;
  readonly target: string;
  readonly catalogTarget: string;
  readonly echoTarget?: string;
  /** Prefix of synthetic catalog item ids, unique per run. */
  readonly runId: string;
}

export function createExec(name: ExecName, params: ExecParams, ctx: ExecContext): Exec {
  switch (name) {
    case "recommend":
      return recommendExec(params, ctx);
    case "feedback":
      return feedbackExec(params, ctx);
    case "catalogUpsert":
      return catalogExec(params, ctx);
    case "echo":
      if (!ctx.echoTarget) throw new Error("the echo exec needs an echo server target");
      return echoExec(params, ctx.channels.get(ctx.echoTarget));
  }
}

// Not checked: that items are sorted by `score`. The proto says so, but rerank's MMR
// returns diversity order with the fused relevance score, so the contract and the
// code disagree (reported; not a load-test matter).
const RECOMMEND_CHECKS = [
  "status is OK",
  "items.length == count",
  "no duplicate items",
  "request_id set",
] as const;

function recommendExec(params: ExecParams, ctx: ExecContext): Exec {
  const client = ctx.channels.get(ctx.target);
  const count = params.count ?? 20;
  const withQuery = params.query ?? false;
  const scene = params.scene ?? "";
  const seen = new Set<string>();
  return {
    method: "Recommend",
    checks: RECOMMEND_CHECKS,
    send(deadlineMs, done) {
      const userId = ctx.data.pickUser();
      const req: RecommendRequest = {
        $typeName: "recsys.recommend.v1.RecommendRequest",
        userId,
        count,
        scene,
        query: withQuery ? ctx.data.pickQuery() : "",
        excludeItemIds: [],
        context: {},
      };
      unary<RecommendResponse>(client, recommendDef, req, deadlineMs, (err, res) => {
        if (err || !res) {
          done(err?.code ?? status.UNKNOWN, 1, null);
          return;
        }
        const items = res.items;
        let failed = 0;
        if (items.length !== count) failed |= 1 << 1;
        seen.clear();
        for (let i = 0; i < items.length; i++) {
          const id = items[i]!.itemId;
          if (seen.has(id)) failed |= 1 << 2;
          seen.add(id);
        }
        if (!res.requestId) failed |= 1 << 3;
        ctx.recent.push(userId, res.requestId, items);
        done(status.OK, failed, res.degradations);
      });
    },
  };
}

const FEEDBACK_CHECKS = ["status is OK", "event_ids.length == events.length", "event ids set"] as const;

/** Event types as a product would send them: mostly clicks and watches. */
const FEEDBACK_MIX: ReadonlyArray<{ type: EventType; share: number; value: (r: () => number) => number }> = [
  { type: EventType.CLICK, share: 0.45, value: () => 0 },
  { type: EventType.WATCH, share: 0.25, value: (r) => Math.round(30 + r() * 3_570) },
  { type: EventType.LIKE, share: 0.1, value: () => 0 },
  { type: EventType.RATING, share: 0.1, value: (r) => 0.5 * (1 + Math.floor(r() * 10)) },
  { type: EventType.SKIP, share: 0.08, value: () => 0 },
  { type: EventType.DISLIKE, share: 0.02, value: () => 0 },
];

function feedbackExec(params: ExecParams, ctx: ExecContext): Exec {
  const client = ctx.channels.get(ctx.target);
  const minEvents = params.minEvents ?? 1;
  const maxEvents = Math.max(minEvents, params.maxEvents ?? 5);
  return {
    method: "Report",
    checks: FEEDBACK_CHECKS,
    send(deadlineMs, done) {
      const n = ctx.data.int(minEvents, maxEvents);
      const rec = ctx.recent.pick(ctx.data.random);
      // Before the first answer: a user drawn by activity and popular items.
      const userId = rec?.userId ?? ctx.data.pickUser();
      const events: FeedbackEvent[] = [];
      for (let i = 0; i < n; i++) {
        const itemId = rec
          ? rec.items[Math.floor(ctx.data.random() * rec.items.length)]!.itemId
          : ctx.data.pickItem().itemId;
        let u = ctx.data.random();
        let kind = FEEDBACK_MIX[FEEDBACK_MIX.length - 1]!;
        for (const k of FEEDBACK_MIX) {
          if (u < k.share) {
            kind = k;
            break;
          }
          u -= k.share;
        }
        events.push({
          $typeName: "recsys.recommend.v1.FeedbackEvent",
          eventId: "",
          userId,
          itemId,
          type: kind.type,
          value: kind.value(ctx.data.random),
          timestamp: 0n,
          requestId: rec?.requestId ?? "",
        });
      }
      const req: ReportRequest = { $typeName: "recsys.recommend.v1.ReportRequest", events };
      unary<ReportResponse>(client, reportDef, req, deadlineMs, (err, res) => {
        if (err || !res) {
          done(err?.code ?? status.UNKNOWN, 1, null);
          return;
        }
        let failed = 0;
        if (res.eventIds.length !== n) failed |= 1 << 1;
        for (const id of res.eventIds) if (!id) failed |= 1 << 2;
        done(status.OK, failed, null);
      });
    },
  };
}

const CATALOG_CHECKS = ["status is OK", "results.length == items.length", "result ids match"] as const;

function catalogExec(params: ExecParams, ctx: ExecContext): Exec {
  const client = ctx.channels.get(ctx.catalogTarget);
  const maxItems = params.maxItems ?? 3;
  let seq = 0;
  return {
    method: "UpsertItems",
    checks: CATALOG_CHECKS,
    send(deadlineMs, done) {
      const n = ctx.data.int(1, maxItems);
      const items: Item[] = [];
      for (let i = 0; i < n; i++) {
        const like = ctx.data.pickItem();
        items.push({
          $typeName: "recsys.catalog.v1.Item",
          itemId: `loadtest-${ctx.runId}-${seq++}`,
          title: `${like.title} (load test)`,
          description: `Synthetic item for load testing, modelled on "${like.title}".`,
          genres: [...like.genres],
          year: new Date().getFullYear(),
          createdAtMs: 0n,
          modalities: [],
        });
      }
      const req: UpsertItemsRequest = { $typeName: "recsys.catalog.v1.UpsertItemsRequest", items };
      unary<UpsertItemsResponse>(client, upsertDef, req, deadlineMs, (err, res) => {
        if (err || !res) {
          done(err?.code ?? status.UNKNOWN, 1, null);
          return;
        }
        let failed = 0;
        if (res.results.length !== n) failed |= 1 << 1;
        for (let i = 0; i < res.results.length; i++)
          if (res.results[i]!.itemId !== items[i]?.itemId) failed |= 1 << 2;
        done(status.OK, failed, null);
      });
    },
  };
}

/** Is CatalogService served at `target`? An empty upsert changes nothing; UNIMPLEMENTED says no. */
export async function probeCatalog(
  channels: Channels,
  target: string,
  timeoutMs = 2_000,
): Promise<{ ok: boolean; why: string }> {
  const client = channels.get(target);
  const req: UpsertItemsRequest = { $typeName: "recsys.catalog.v1.UpsertItemsRequest", items: [] };
  return new Promise((resolve) => {
    unary(client, upsertDef, req, Date.now() + timeoutMs, (err) => {
      if (!err) resolve({ ok: true, why: `CatalogService answers at ${target}` });
      else if (err.code === status.UNIMPLEMENTED) {
        resolve({
          ok: false,
          why: `CatalogService/UpsertItems is UNIMPLEMENTED at ${target} (no catalog service yet)`,
        });
      } else if (err.code === status.INVALID_ARGUMENT) {
        resolve({
          ok: true,
          why: `CatalogService answers at ${target} (empty probe rejected: ${err.details})`,
        });
      } else
        resolve({ ok: false, why: `CatalogService probe at ${target} failed: ${err.code} ${err.details}` });
    });
  });
}

export const ECHO_PATH = "/recsys.loadtest.v1.EchoService/Echo";
const identity = (b: Buffer) => b;

function echoExec(params: ExecParams, client: Client): Exec {
  const payload = Buffer.alloc(params.payloadBytes ?? 16, 7);
  return {
    method: "Echo",
    checks: ["status is OK", "payload echoed"],
    send(deadlineMs, done) {
      client.makeUnaryRequest<Buffer, Buffer>(
        ECHO_PATH,
        identity,
        identity,
        payload,
        { deadline: deadlineMs },
        (err, res) => {
          if (err || !res) done(err?.code ?? status.UNKNOWN, 1, null);
          else done(status.OK, res.length === payload.length ? 0 : 2, null);
        },
      );
    },
  };
}
