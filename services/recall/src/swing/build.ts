/**
 * Swing item-to-item similarity (Alibaba, 2020):
 *
 *   sim(i, j) = sum over user pairs u < v who both interacted with i and j of
 *               w_u * w_v / (alpha + |I_u ∩ I_v|),      w_u = 1 / sqrt(|I_u|)
 *
 * Pairs of users who share few items are strong evidence that i and j belong
 * together; pairs who share everything (heavy users) are weak evidence.
 * Cost is bounded by sampling at most `maxUsersPerItem` users per item (the
 * most recent) and `maxItemsPerUser` items per user.
 */
import type { Interaction } from "@recsys/shared";

export interface SwingOptions {
  readonly alpha: number;
  readonly topK: number;
  readonly maxUsersPerItem: number;
  readonly maxItemsPerUser: number;
  /** Ratings below this are not positive evidence. */
  readonly minRating: number;
}

export const DEFAULT_SWING_OPTIONS: SwingOptions = {
  alpha: 1,
  topK: 50,
  maxUsersPerItem: 120,
  maxItemsPerUser: 300,
  minRating: 3,
};

export type SwingNeighbours = Map<string, Array<{ itemId: string; score: number }>>;

export function buildSwing(
  interactions: readonly Interaction[],
  options: SwingOptions = DEFAULT_SWING_OPTIONS,
): SwingNeighbours {
  const itemIndex = new Map<string, number>();
  const itemIds: string[] = [];
  const userIndex = new Map<string, number>();
  const userItems: number[][] = [];
  const itemUsers: Array<Array<{ user: number; ts: number }>> = [];
  for (const r of interactions) {
    if (r.rating > 0 && r.rating < options.minRating) continue;
    let i = itemIndex.get(r.itemId);
    if (i === undefined) {
      i = itemIds.length;
      itemIndex.set(r.itemId, i);
      itemIds.push(r.itemId);
      itemUsers.push([]);
    }
    let u = userIndex.get(r.userId);
    if (u === undefined) {
      u = userItems.length;
      userIndex.set(r.userId, u);
      userItems.push([]);
    }
    userItems[u]!.push(i);
    itemUsers[i]!.push({ user: u, ts: r.timestampMs });
  }
  // Each user's most recent items, as a sorted Int32Array for merge intersection.
  const userSets = userItems.map((items) => Int32Array.from(items.slice(-options.maxItemsPerUser)).sort());
  const userWeight = userSets.map((s) => 1 / Math.sqrt(Math.max(1, s.length)));
  const scratch = new Float64Array(itemIds.length);
  const touched: number[] = [];
  const result: SwingNeighbours = new Map();

  for (let i = 0; i < itemIds.length; i++) {
    const users = itemUsers[i]!.slice()
      .sort((a, b) => b.ts - a.ts)
      .slice(0, options.maxUsersPerItem)
      .map((x) => x.user);
    if (users.length < 2) continue;
    for (let a = 0; a < users.length; a++) {
      const ua = users[a]!;
      const sa = userSets[ua]!;
      for (let b = a + 1; b < users.length; b++) {
        const ub = users[b]!;
        const sb = userSets[ub]!;
        // First pass: the size of the intersection; second: add to each shared item.
        let p = 0;
        let q = 0;
        let shared = 0;
        while (p < sa.length && q < sb.length) {
          const x = sa[p]!;
          const y = sb[q]!;
          if (x === y) {
            shared++;
            p++;
            q++;
          } else if (x < y) p++;
          else q++;
        }
        if (shared <= 1) continue; // only i itself
        const w = (userWeight[ua]! * userWeight[ub]!) / (options.alpha + shared);
        p = 0;
        q = 0;
        while (p < sa.length && q < sb.length) {
          const x = sa[p]!;
          const y = sb[q]!;
          if (x === y) {
            if (x !== i) {
              if (scratch[x] === 0) touched.push(x);
              scratch[x]! += w;
            }
            p++;
            q++;
          } else if (x < y) p++;
          else q++;
        }
      }
    }
    const neighbours = touched
      .map((j) => ({ itemId: itemIds[j]!, score: scratch[j]! }))
      .sort((x, y) => y.score - x.score || (x.itemId < y.itemId ? -1 : 1))
      .slice(0, options.topK);
    for (const j of touched) scratch[j] = 0;
    touched.length = 0;
    if (neighbours.length > 0) result.set(itemIds[i]!, neighbours);
  }
  return result;
}

export function serializeSwing(neighbours: SwingNeighbours): string {
  const lines = ["item_id\tneighbours"];
  for (const [itemId, list] of neighbours) {
    lines.push(`${itemId}\t${list.map((n) => `${n.itemId}:${n.score.toPrecision(6)}`).join(",")}`);
  }
  return `${lines.join("\n")}\n`;
}

export function parseSwing(text: string): SwingNeighbours {
  const out: SwingNeighbours = new Map();
  const lines = text.split("\n");
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!;
    if (!line) continue;
    const [itemId = "", list = ""] = line.split("\t");
    out.set(
      itemId,
      list
        .split(",")
        .filter(Boolean)
        .map((pair) => {
          const at = pair.lastIndexOf(":");
          return { itemId: pair.slice(0, at), score: Number(pair.slice(at + 1)) };
        }),
    );
  }
  return out;
}
