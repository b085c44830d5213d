/**
 * Batch job: builds Swing neighbours from a dataset and publishes them to the
 * model store as a new `swing` version.
 *   node services/recall/dist/swing/build-cli.js --data data/ml-latest-small --store var/models [--holdout 1]
 * `--holdout N` leaves out each user's last N events (for evaluation runs).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  loadInteractions,
  newVersionId,
  perUserTemporalSplit,
  publishVersion,
  versionDir,
} from "@recsys/shared";
import { buildSwing, DEFAULT_SWING_OPTIONS, serializeSwing } from "./build.js";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: "data/ml-latest-small" },
    store: { type: "string", default: "var/models" },
    holdout: { type: "string", default: "0" },
    model: { type: "string", default: "swing" },
  },
});
const started = performance.now();
let interactions = await loadInteractions(values.data);
const holdout = Number(values.holdout);
if (holdout > 0) interactions = perUserTemporalSplit(interactions, holdout).train;
const neighbours = buildSwing(interactions, DEFAULT_SWING_OPTIONS);
const version = newVersionId(holdout > 0 ? `holdout${holdout}` : "full");
const dir = versionDir(values.store, values.model, version);
const { mkdirSync } = await import("node:fs");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "neighbours.tsv"), serializeSwing(neighbours));
publishVersion(values.store, values.model, version, ["neighbours.tsv"], {
  method: "swing",
  params: DEFAULT_SWING_OPTIONS,
  data: { dir: values.data, interactions: interactions.length, holdout },
});
const seconds = ((performance.now() - started) / 1000).toFixed(1);
process.stderr.write(`swing: ${neighbours.size} items with neighbours, version ${version} (${seconds}s)\n`);
