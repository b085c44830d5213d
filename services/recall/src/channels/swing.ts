import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Candidate,
  type CandidateSource,
  currentVersion,
  isPositiveEvent,
  ModelStoreError,
  newCandidate,
  readVerifiedManifest,
  type StageContext,
  versionDir,
} from "@recsys/shared";
import { parseSwing, type SwingNeighbours } from "../swing/build.js";

/**
 * Item-to-item recall: the user's most recent items are seeds; each seed's
 * Swing neighbours are scored by similarity times the seed's recency weight.
 * The seed that contributed most becomes the reason ("because you watched X").
 */
export class SwingCandidateSource implements CandidateSource {
  readonly id = "swing";

  constructor(
    private readonly neighbours: SwingNeighbours,
    readonly version: string,
    private readonly maxSeeds: number,
    private readonly seedDecay = 0.9,
  ) {}

  static load(store: string, maxSeeds: number): SwingCandidateSource {
    const version = currentVersion(store, "swing");
    if (!version) throw new ModelStoreError(`no swing version in ${store}: run the swing batch job`);
    readVerifiedManifest(store, "swing", version);
    const text = readFileSync(join(versionDir(store, "swing", version), "neighbours.tsv"), "utf8");
    return new SwingCandidateSource(parseSwing(text), version, maxSeeds);
  }

  fetch(ctx: StageContext, quota: number): Candidate[] {
    const history = ctx.user.history;
    const scores = new Map<string, { score: number; best: number; seed: number }>();
    let weight = 1;
    let seeds = 0;
    for (let k = history.length - 1; k >= 0 && seeds < this.maxSeeds; k--) {
      const event = history[k]!;
      if (!isPositiveEvent(event)) continue; // disliked or skipped items are not seeds
      seeds++;
      const list = this.neighbours.get(event.itemId);
      if (list) {
        for (const n of list) {
          const contribution = weight * n.score;
          const entry = scores.get(n.itemId);
          if (!entry) scores.set(n.itemId, { score: contribution, best: contribution, seed: k });
          else {
            entry.score += contribution;
            if (contribution > entry.best) {
              entry.best = contribution;
              entry.seed = k;
            }
          }
        }
      }
      weight *= this.seedDecay;
    }
    const ranked = [...scores.entries()]
      .sort((a, b) => b[1].score - a[1].score || (a[0] < b[0] ? -1 : 1))
      .slice(0, quota);
    const top = ranked[0]?.[1].score ?? 1;
    return ranked.map(([itemId, s]) =>
      newCandidate(itemId, { score: s.score / top, channels: [this.id], reasonIndex: s.seed }),
    );
  }
}
