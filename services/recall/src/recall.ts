/**
 * The recall stage: every channel runs concurrently with its own quota and
 * time limit and fails open; outputs are merged (an item found by several
 * channels keeps all of them), de-duplicated and filtered, then sorted by the
 * best normalised channel score.
 */
import type { Metrics } from "@recsys/shared";
import {
  blockedItemsFilter,
  byScoreDesc,
  type Candidate,
  type CandidateSource,
  duplicateItemsFilter,
  type Filter,
  idSetFilter,
  runFilters,
  type StageContext,
  seenItemsFilter,
  withTimeout,
} from "@recsys/shared";

export interface ChannelConfig {
  readonly source: CandidateSource;
  readonly quota: number;
  /** Per-channel time limit, ms. */
  readonly timeoutMs: number;
}

export interface ChannelOutcome {
  readonly channel: string;
  readonly returned: number;
  readonly latencyMs: number;
  readonly error: string;
}

export interface RecallResult {
  readonly candidates: Candidate[];
  readonly channels: ChannelOutcome[];
  readonly degradations: string[];
}

export interface RecallRequestView extends StageContext {
  readonly excludeItemIds: readonly string[];
  readonly maxCandidates: number;
  readonly quotaOverrides: Readonly<Record<string, number>>;
}

export class RecallPipeline {
  private readonly filters: Filter[];

  constructor(
    private readonly channels: readonly ChannelConfig[],
    /** Used when every channel fails: item ids, most popular first. */
    private readonly emergencyPopular: () => Candidate[],
    private readonly metrics?: Metrics,
  ) {
    this.filters = [
      duplicateItemsFilter,
      blockedItemsFilter,
      idSetFilter("excluded_items", (ctx) => new Set((ctx as RecallRequestView).excludeItemIds)),
      seenItemsFilter,
    ];
  }

  async run(req: RecallRequestView): Promise<RecallResult> {
    const outcomes = await Promise.all(
      this.channels.map(async (ch): Promise<{ outcome: ChannelOutcome; candidates: Candidate[] }> => {
        const quota = req.quotaOverrides[ch.source.id] ?? ch.quota;
        const started = performance.now();
        if (quota <= 0)
          return { outcome: { channel: ch.source.id, returned: 0, latencyMs: 0, error: "" }, candidates: [] };
        // Over-fetch so that filtering seen items still leaves about `quota`.
        const fetchQuota = ch.source.excludesHistory ? quota : quota + req.user.history.length;
        const limitMs = Math.min(ch.timeoutMs, req.deadline - Date.now());
        try {
          const candidates = await withTimeout(
            Promise.resolve().then(() => ch.source.fetch(req, fetchQuota)),
            limitMs,
            () => new Error(`timed out after ${Math.round(limitMs)} ms`),
          );
          const latencyMs = performance.now() - started;
          this.metrics?.stageDuration.observe(
            { stage: `recall.${ch.source.id}`, outcome: "ok" },
            latencyMs / 1000,
          );
          return {
            outcome: { channel: ch.source.id, returned: candidates.length, latencyMs, error: "" },
            candidates,
          };
        } catch (err) {
          const latencyMs = performance.now() - started;
          this.metrics?.stageDuration.observe(
            { stage: `recall.${ch.source.id}`, outcome: "error" },
            latencyMs / 1000,
          );
          const error = err instanceof Error ? err.message : String(err);
          return { outcome: { channel: ch.source.id, returned: 0, latencyMs, error }, candidates: [] };
        }
      }),
    );
    const degradations: string[] = [];
    for (const { outcome } of outcomes) {
      if (outcome.error) {
        degradations.push(`recall_channel_failed:${outcome.channel}`);
        this.metrics?.degradations.inc({ kind: `recall_channel_failed:${outcome.channel}` });
      }
    }
    const attempted = outcomes.filter((o) => (req.quotaOverrides[o.outcome.channel] ?? 1) > 0);
    let merged: Candidate[] = [];
    if (attempted.length > 0 && attempted.every((o) => o.outcome.error)) {
      degradations.push("recall_all_channels_failed");
      this.metrics?.degradations.inc({ kind: "recall_all_channels_failed" });
      merged = this.emergencyPopular();
    } else {
      for (const [k, { candidates }] of outcomes.entries()) {
        const ch = this.channels[k]!;
        const quota = req.quotaOverrides[ch.source.id] ?? ch.quota;
        // Filter per channel before applying its quota, so seen items do not eat it.
        const kept = runFilters(this.filters.slice(1), req, candidates).slice(0, quota);
        for (const c of kept) c.recallScore = c.score;
        merged.push(...kept);
      }
    }
    const filtered = runFilters(this.filters, req, merged, (id, n) =>
      this.metrics?.filtered.inc({ filter: id }, n),
    );
    for (const c of filtered) c.score = c.recallScore;
    filtered.sort(byScoreDesc);
    return {
      candidates: filtered.slice(0, req.maxCandidates),
      channels: outcomes.map((o) => o.outcome),
      degradations,
    };
  }
}
