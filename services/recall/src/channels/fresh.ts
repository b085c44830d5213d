import {
  type Candidate,
  type CandidateSource,
  type ItemCatalog,
  newCandidate,
  type StageContext,
} from "@recsys/shared";
import type { ContentHit, ContentIndex } from "../content/content-index.js";
import { closestSeed, contentProfile } from "../content/profile.js";

const DAY_MS = 86_400_000;

/**
 * Which items count as new: those the catalog service created less than
 * `maxAgeMs` ago (wall clock: now − created_at), and dataset items whose age
 * by the dataset's own clock is at most `maxAgeMs` (ItemCatalog.ageMs: the
 * dataset's latest event minus the item's first interaction; a historical
 * dataset has no creation times, and its "now" is its last event).
 */
export class NewItemSet {
  /** Items new for good (dataset ages do not change while the process runs). */
  private readonly fixed = new Set<string>();
  /** Catalog items: creation time, wall clock. */
  private readonly created = new Map<string, number>();

  constructor(
    readonly maxAgeMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  static fromCatalog(catalog: ItemCatalog, maxAgeMs: number, clock: () => number = Date.now): NewItemSet {
    const set = new NewItemSet(maxAgeMs, clock);
    for (const itemId of catalog.items.keys()) {
      const created = catalog.createdAtMs(itemId);
      if (created !== undefined) set.noteCreated(itemId, created);
      else {
        const age = catalog.ageMs(itemId);
        if (age !== undefined && age <= maxAgeMs) set.addFixed(itemId);
      }
    }
    return set;
  }

  addFixed(itemId: string): void {
    this.fixed.add(itemId);
  }

  /** An item the catalog service created at `createdAtMs` (0: unknown, nothing changes). */
  noteCreated(itemId: string, createdAtMs: number): void {
    if (createdAtMs <= 0) return;
    this.fixed.delete(itemId); // a creation time, once known, is what counts
    this.created.set(itemId, createdAtMs);
  }

  /** The items new now. */
  ids(): string[] {
    const now = this.clock();
    const out = [...this.fixed];
    for (const [itemId, at] of this.created) {
      if (now - at <= this.maxAgeMs) out.push(itemId);
      else this.created.delete(itemId); // aged out for good
    }
    return out;
  }
}

export interface FreshOptions {
  /** Recent positive items whose content vectors make the user's profile. */
  readonly seeds: number;
  /** Up to this many new items are scanned exactly; beyond, the HNSW graph is searched with a filter. */
  readonly exactMax?: number;
}

/**
 * Cold start: content-embedding ANN restricted to new items. The user's
 * content profile (recency-weighted mean of their recent positive items'
 * content vectors) against the new items' content vectors. ID-based
 * channels cannot recall an item nobody has interacted with; its text can.
 * Scores are cosine / best cosine; the reason is the recent item most
 * similar to the candidate.
 */
export class FreshCandidateSource implements CandidateSource {
  readonly id = "fresh";

  constructor(
    private readonly index: ContentIndex,
    readonly newItems: NewItemSet,
    private readonly options: FreshOptions,
  ) {}

  get version(): string {
    return `content-ann-age${Math.round(this.newItems.maxAgeMs / DAY_MS)}d`;
  }

  fetch(ctx: StageContext, quota: number): Candidate[] {
    const profile = contentProfile(this.index, ctx.user.history, this.options.seeds);
    if (!profile || quota <= 0) return [];
    const seen = new Set(ctx.user.history.map((e) => e.itemId));
    const labels: number[] = [];
    for (const itemId of this.newItems.ids()) {
      if (seen.has(itemId)) continue;
      const label = this.index.labelOf(itemId);
      if (label !== undefined) labels.push(label);
    }
    if (labels.length === 0) return [];
    let hits: ContentHit[];
    if (labels.length <= (this.options.exactMax ?? 5_000)) {
      hits = this.index.exact(profile.vector, quota, undefined, labels);
    } else {
      const allowed = new Set(labels);
      hits = this.index.search(profile.vector, quota, (label) => allowed.has(label));
    }
    const top = hits[0]?.score ?? 0;
    if (!(top > 0)) return [];
    return hits.map((h) =>
      newCandidate(this.index.itemId(h.label), {
        score: Math.max(0, h.score) / top,
        channels: [this.id],
        reasonIndex: closestSeed(this.index, profile.seeds, h.label),
      }),
    );
  }
}
