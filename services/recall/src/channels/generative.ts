import {
  type Candidate,
  type CandidateSource,
  type Metrics,
  type ModelWatcher,
  newCandidate,
  type OnnxPool,
  type StageContext,
} from "@recsys/shared";
import { addItem, type GenerativeModel, generate } from "../models/generative-model.js";

/**
 * Generative retrieval (TIGER / OneRec style, docs/models.md): the model reads
 * the user's last items as semantic IDs and generates the next item's code
 * path token by token. Beam search keeps the `width` best prefixes at each
 * level, constrained to paths that name an item; at the last level the
 * user's history items are masked out, so the final beams are unseen items,
 * best first. The search runs as one task on the ONNX worker pool (one inference per level).
 *
 * New items get a path from their content vector when they are upserted
 * (`upsert`), so the channel can generate an item on its first day. The
 * upserts are kept and replayed into every model version the watcher loads.
 */
export class GenerativeCandidateSource implements CandidateSource {
  readonly id = "generative";
  /** The last level masks the history's items: the beams are all unseen items. */
  readonly excludesHistory = true;
  private readonly upserted = new Map<string, Float32Array>();
  private appliedTo: GenerativeModel | undefined;
  private unaddressable = 0;

  constructor(
    private readonly watcher: ModelWatcher<GenerativeModel>,
    private readonly pool: OnnxPool,
    private readonly metrics?: Metrics,
    /** Cap on beams, whatever the quota. */
    private readonly maxBeam = 300,
  ) {}

  get version(): string | undefined {
    return this.watcher.current()?.version;
  }

  /** Gives a new or changed catalogue item a semantic ID from its content vector. */
  upsert(itemId: string, content: Float32Array): void {
    this.upserted.set(itemId, content);
    const model = this.watcher.current()?.value;
    if (model && model === this.appliedTo) this.address(model, itemId, content);
  }

  private address(model: GenerativeModel, itemId: string, content: Float32Array): void {
    if (addItem(model, itemId, content)) return;
    this.unaddressable++;
    this.metrics?.degradations.inc({ kind: "generative_unaddressable_item" });
  }

  private model(): GenerativeModel {
    const loaded = this.watcher.current();
    if (!loaded) throw new Error(`${this.id}: no model version loaded`);
    const model = loaded.value;
    if (model !== this.appliedTo) {
      for (const [itemId, content] of this.upserted) this.address(model, itemId, content);
      this.appliedTo = model;
    }
    return model;
  }

  async fetch(ctx: StageContext, quota: number): Promise<Candidate[]> {
    const model = this.model();
    const history = ctx.user.history.map((e) => e.itemId);
    if (!history.some((id) => model.codeOf.has(id))) return [];
    const generated = await generate(model, this.pool, history, Math.min(quota, this.maxBeam), this.metrics);
    if (generated.length === 0) return [];
    const top = generated[0]!.logProb;
    const bottom = generated[generated.length - 1]!.logProb;
    const span = top - bottom || 1;
    return generated.map(({ itemId, logProb }) =>
      newCandidate(itemId, {
        // rescaled to [0.5, 1] so the channel's best is 1 like the others
        score: 0.5 + (0.5 * (logProb - bottom)) / span,
        channels: [this.id],
        reasonIndex: reasonFor(model, itemId, history),
      }),
    );
  }
}

/** The most recent history item that shares the longest code prefix (at least the first level), -1 none. */
function reasonFor(model: GenerativeModel, itemId: string, history: readonly string[]): number {
  const codes = model.codeOf.get(itemId);
  if (!codes) return -1;
  let best = -1;
  let bestShared = 0;
  for (let i = history.length - 1, looked = 0; i >= 0 && looked < model.maxHistory; i--) {
    const other = model.codeOf.get(history[i]!);
    if (!other) continue;
    looked++;
    let shared = 0;
    while (shared < codes.length - 1 && other[shared] === codes[shared]) shared++;
    if (shared > bestShared) {
      bestShared = shared;
      best = i;
    }
  }
  return best;
}
