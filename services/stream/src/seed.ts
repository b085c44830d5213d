import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { Interaction } from "@recsys/shared";

/** Identity of a dataset for the one-time user-state import: path, size and time range. */
export function datasetTag(dataDir: string, interactions: readonly Interaction[]): string {
  let latest = 0;
  for (const r of interactions) if (r.timestampMs > latest) latest = r.timestampMs;
  return createHash("sha256")
    .update(`${resolve(dataDir)}|${interactions.length}|${latest}`)
    .digest("hex")
    .slice(0, 16);
}
