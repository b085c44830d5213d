/**
 * Runs one Recommend request through the funnel with per-stage deadlines
 * and the fallback chain of the funnel definition. Every degradation is both
 * flagged in the response and counted in metrics.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  answerFilters,
  byScoreDesc,
  type Candidate,
  type ClientOf,
  decodeCandidates,
  encodeCandidates,
  encodeUser,
  isGrpcStatusError,
  type Logger,
  type Metrics,
  newCandidate,
  runFilters,
  type StageContext,
  splitIds,
  statusName,
  type UserStateStore,
  type UserView,
} from "@recsys/shared";
import {
  type CandidateBatch,
  CandidateBatchSchema,
  EventType,
  UserContextSchema,
} from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import type { PrerankService } from "@recsys/shared/gen/recsys/prerank/v1/prerank_service_pb.js";
import type { RankService } from "@recsys/shared/gen/recsys/rank/v1/rank_service_pb.js";
import type { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import type { RecommendedItemSchema } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";
import type { RerankService } from "@recsys/shared/gen/recsys/rerank/v1/rerank_service_pb.js";
import { CircuitBreaker, CircuitOpenError } from "./breaker.js";
import { type FailOpen, type FunnelDefinition, STAGE_STEPS, type StageId } from "./funnel.js";

/** What a stage call gives the executor. */
interface StageAnswer {
  readonly batch: CandidateFlow;
  readonly degradations: readonly string[];
  readonly versions: Readonly<Record<string, string>>;
}

export interface StageClients {
  readonly recall: ClientOf<typeof RecallService>;
  readonly prerank: ClientOf<typeof PrerankService>;
  readonly rank: ClientOf<typeof RankService>;
  readonly rerank: ClientOf<typeof RerankService>;
}

export interface RecommendInput {
  readonly requestId: string;
  readonly userId: string;
  readonly count: number;
  readonly scene: string;
  readonly query: string;
  readonly excludeItemIds: readonly string[];
  /** Absolute deadline set by the caller (Infinity when none). */
  readonly callerDeadline: number;
  /** Start-up warm-up: generous budgets, degradations not counted. */
  readonly warmUp?: boolean;
}

export interface RecommendOutput {
  readonly items: Array<MessageInitShape<typeof RecommendedItemSchema>>;
  readonly degradations: string[];
  readonly modelVersions: Record<string, string>;
}

/** Popular items the gateway can always serve without any other stage. */
export interface PopularFallback {
  topItemIds(n: number): string[];
}

const SAFETY_MARGIN_MS = 2;

export class FunnelRunner {
  constructor(
    private readonly clients: StageClients,
    private readonly store: UserStateStore,
    private readonly popular: PopularFallback,
    private readonly historyLength: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    breaker: { readonly failures: number; readonly cooldownMs: number } = { failures: 5, cooldownMs: 2_000 },
  ) {
    for (const { id } of STAGE_STEPS)
      this.breakers[id] = new CircuitBreaker(id, breaker.failures, breaker.cooldownMs);
  }

  /** One circuit breaker per stage (breaker.ts). */
  private readonly breakers = {} as Record<StageId, CircuitBreaker>;

  async run(funnel: FunnelDefinition, input: RecommendInput): Promise<RecommendOutput> {
    const started = Date.now();
    const deadline = input.warmUp
      ? input.callerDeadline
      : Math.min(input.callerDeadline, started + funnel.totalBudgetMs);
    const degradations: string[] = [];
    const modelVersions: Record<string, string> = {};
    const degrade = (kind: string, cause?: unknown) => {
      degradations.push(kind);
      if (input.warmUp) return;
      this.metrics.degradations.inc({ kind });
      if (cause !== undefined) {
        const code = isGrpcStatusError(cause) ? statusName(cause.code) : undefined;
        this.logger.warn({ requestId: input.requestId, kind, code, err: describe(cause) }, "degraded");
      }
    };
    const stageDeadline = (budgetMs: number) =>
      input.warmUp ? deadline : Math.min(deadline - SAFETY_MARGIN_MS, Date.now() + budgetMs);
    const timed = async <T>(stage: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        const value = await fn();
        this.metrics.stageDuration.observe({ stage, outcome: "ok" }, (performance.now() - t0) / 1000);
        return value;
      } catch (err) {
        this.metrics.stageDuration.observe({ stage, outcome: "error" }, (performance.now() - t0) / 1000);
        throw err;
      }
    };
    /** A stage call behind its circuit breaker: skipped at once (CircuitOpenError) while it is open. */
    const guarded = async <T>(stage: StageId, fn: () => Promise<T>): Promise<T> => {
      const breaker = this.breakers[stage];
      if (!breaker.allow()) {
        degrade(`circuit_open:${stage}`);
        throw new CircuitOpenError(stage);
      }
      try {
        const value = await timed(stage, fn);
        breaker.success();
        return value;
      } catch (err) {
        breaker.failure();
        throw err;
      }
    };
    /** The cause worth logging: none for a skipped call (one log line per request while open is noise). */
    const cause = (err: unknown) => (err instanceof CircuitOpenError ? undefined : err);

    // Hydrate the user once; every stage gets the same view.
    let userView: UserView;
    try {
      const state = await timed("user_state", () => this.store.get(input.userId, this.historyLength));
      const blocked = state.history.filter((e) => e.type === EventType.DISLIKE).map((e) => e.itemId);
      userView = {
        userId: input.userId,
        known: state.known,
        blockedItemIds: blocked,
        history: state.history,
        earlierSeenItemIds: state.earlierSeenItemIds,
      };
      if (state.unavailable) degrade("user_state_unavailable");
      else if (!state.known) degrade("unknown_user");
    } catch (err) {
      degrade("user_state_unavailable", err);
      userView = {
        userId: input.userId,
        known: false,
        blockedItemIds: [],
        history: [],
        earlierSeenItemIds: [],
      };
    }
    // Built once, sent to every stage.
    const user = create(UserContextSchema, encodeUser(userView));
    const callOpts = (budgetMs: number) => ({
      deadline: stageDeadline(budgetMs),
      requestId: input.requestId,
    });

    // The stages' calls; batches pass from stage to stage as the wire messages they arrived in, and
    // the gateway decodes them only when it must act on them itself (a fallback, a cut).
    type Call = (batch: CandidateFlow, opts: ReturnType<typeof callOpts>) => Promise<StageAnswer>;
    const call: Record<StageId, Call> = {
      recall: async (_batch, opts) => {
        const res = await this.clients.recall.recall(
          {
            user,
            scene: input.scene,
            query: input.query,
            excludeItemIds: [...input.excludeItemIds],
            maxCandidates: funnel.recall.maxCandidates,
            channelQuotas: funnel.recall.channels,
          },
          opts,
        );
        const versions = Object.fromEntries(
          Object.entries(res.modelVersions).map(([k, v]) => [`recall.${k}`, v]),
        );
        return { batch: CandidateFlow.fromWire(res.candidates), degradations: res.degradations, versions };
      },
      prerank: async (batch, opts) => {
        const res = await this.clients.prerank.prerank(
          { user, candidates: batch.wire(), keep: funnel.prerank.keep },
          opts,
        );
        // e.g. prerank_no_model: its heuristic scored
        const versions = { prerank: res.modelVersion };
        return { batch: CandidateFlow.fromWire(res.candidates), degradations: res.degradations, versions };
      },
      rank: async (batch, opts) => {
        const sent = batch.size;
        const res = await this.clients.rank.rank({ user, candidates: batch.wire() }, opts);
        // a broken contract counts against the stage like a failed call
        const ranked = CandidateFlow.fromWire(res.candidates);
        if (ranked.size !== sent)
          throw new Error(`rank broke its contract: sent ${sent}, got ${ranked.size}`);
        return { batch: ranked, degradations: res.degradations, versions: { rank: res.modelVersion } };
      },
      rerank: async (batch, opts) => {
        const res = await this.clients.rerank.rerank(
          {
            user,
            candidates: batch.wire(),
            count: input.count,
            excludeItemIds: [...input.excludeItemIds],
            scoreWeights: funnel.rerank.weights,
            query: input.query,
          },
          opts,
        );
        return {
          batch: CandidateFlow.fromWire(res.candidates),
          degradations: [],
          versions: { rerank: res.policyVersion },
        };
      },
    };
    // What the gateway serves instead of a stage that failed (funnel.ts, STAGE_STEPS).
    const failOpen: Record<FailOpen, (batch: CandidateFlow) => CandidateFlow> = {
      popular: () => CandidateFlow.fromRows(this.popularCandidates(funnel.recall.maxCandidates)),
      top_by_recall_score: (batch) => {
        const kept = [...batch.rows()]
          .sort((a, b) => b.recallScore - a.recallScore)
          .slice(0, funnel.prerank.keep);
        for (const c of kept) c.prerankScore = c.recallScore;
        return CandidateFlow.fromRows(kept);
      },
      prerank_scores: (batch) => {
        const rows = batch.rows();
        for (const c of rows) c.score = c.prerankScore;
        return CandidateFlow.fromRows(rows);
      },
      rank_order: (batch) => CandidateFlow.fromRows(this.localRerank(userView, batch.rows(), input)),
    };

    // The executor: every stage of the funnel in order, each behind its breaker and budget, failing
    // open by its policy; an evaluation's `stopAfter` answers with the batch as it leaves that stage.
    let batch = CandidateFlow.fromRows([]);
    let final: Candidate[] | undefined;
    for (const step of STAGE_STEPS) {
      try {
        const out = await guarded(step.id, () => call[step.id](batch, callOpts(funnel[step.id].budgetMs)));
        batch = out.batch;
        for (const d of out.degradations) degrade(d);
        Object.assign(modelVersions, out.versions);
      } catch (err) {
        degrade(step.degradation, cause(err));
        batch = failOpen[step.onFailure](batch);
        modelVersions[step.id] = step.fallbackVersion;
      }
      if (step.id === "recall" && batch.size === 0) {
        degrade("recall_empty");
        batch = failOpen.popular(batch);
      }
      if (step.id === funnel.stopAfter) {
        final = this.localRerank(userView, batch.rows(), input);
        break;
      }
    }
    final ??= batch.rows();

    // `count` items whenever the catalogue has them: a short (or empty) answer is
    // filled from popular items the user has not seen. Fallback paths can come up
    // short, e.g. the popular recall fallback minus a heavy user's seen items.
    if (final.length < input.count) {
      degrade(final.length === 0 ? "empty_result_popular" : "short_result_popular_fill");
      const have = new Set(final.map((c) => c.itemId));
      const fill = this.localRerank(
        userView,
        this.popularCandidates(input.count * 4 + userView.history.length + have.size).filter(
          (c) => !have.has(c.itemId),
        ),
        { ...input, count: input.count - final.length },
      );
      final = [...final, ...fill];
    }
    return {
      items: final.map((c) => ({
        itemId: c.itemId,
        score: c.score,
        taskScores: c.taskScores,
        channels: c.channels,
        reason: c.reason || defaultReason(c),
      })),
      degradations,
      modelVersions,
    };
  }

  /** Score order (the last stage's score) with de-duplication and filters still applied. */
  private localRerank(user: UserView, candidates: Candidate[], input: RecommendInput): Candidate[] {
    const ctx: StageContext = {
      requestId: input.requestId,
      user,
      scene: input.scene,
      query: input.query,
      deadline: 0,
    };
    const kept = runFilters(answerFilters(input.excludeItemIds), ctx, candidates, (id, n) =>
      this.metrics.filtered.inc({ filter: id }, n),
    );
    return kept.sort(byScoreDesc).slice(0, input.count);
  }

  private popularCandidates(n: number): Candidate[] {
    const ids = this.popular.topItemIds(n);
    return ids.map((itemId, i) =>
      newCandidate(itemId, {
        score: 1 - i / Math.max(1, ids.length),
        recallScore: 1 - i / Math.max(1, ids.length),
        prerankScore: 1 - i / Math.max(1, ids.length),
        channels: ["popular"],
      }),
    );
  }
}

/** A candidate batch held as a wire message or as rows, converted only when needed. */
class CandidateFlow {
  private constructor(
    private message: CandidateBatch | undefined,
    private decoded: Candidate[] | undefined,
  ) {}

  static fromWire(message: CandidateBatch | undefined): CandidateFlow {
    return new CandidateFlow(message ?? create(CandidateBatchSchema), undefined);
  }

  static fromRows(rows: Candidate[]): CandidateFlow {
    return new CandidateFlow(undefined, rows);
  }

  get size(): number {
    return this.decoded ? this.decoded.length : splitIds(this.message?.itemIds ?? "").length;
  }

  rows(): Candidate[] {
    this.decoded ??= decodeCandidates(this.message);
    return this.decoded;
  }

  wire(): CandidateBatch {
    this.message ??= create(CandidateBatchSchema, encodeCandidates(this.decoded ?? []));
    return this.message;
  }
}

function defaultReason(c: Candidate): string {
  return c.channels.includes("popular") ? "trending" : "recommended for you";
}

function describe(err: unknown): string {
  if (isGrpcStatusError(err)) return err.details ?? err.message;
  return err instanceof Error ? err.message : String(err);
}
