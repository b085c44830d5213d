/**
 * Replays the served recall stage at past moments, to give prerank and rank
 * the candidate sets they will face (docs/ranking.md, "Training samples").
 *
 *   node services/gateway/dist/eval/replay-cli.js --out FILE [--data data/ml-latest-small]
 *     [--store var/models] [--sequence-store DIR] [--contexts 8] [--users 0] [--concurrency 4]
 *   node services/gateway/dist/eval/replay-cli.js --write-data DIR [--data ...] [--contexts 8]
 *
 * For every user, each user's last event is held out exactly as
 * `npm run eval:funnel` holds it out, and is never read here. The `contexts`
 * events before it are the sample moments: at each one the recall service
 * (its code, its models, the funnel's quotas) is asked over gRPC for the
 * user with the history strictly before that moment, and the candidates it
 * returns are written out with the event the user engaged with then.
 *
 * What the services read: the data without the held-out events (as in the
 * evaluation), and a Swing table rebuilt without each user's last
 * `contexts + 1` events, so no item-to-item table counts a sample's own
 * positive. The sequence models (kuaiformer, sasrec) come from
 * `--sequence-store` (default `--store`): scripts/train-rank.sh trains a
 * KuaiFormer there on the data `--write-data DIR` writes (each user's events
 * but the last `contexts + 1`), so the replayed encoder never saw a sample's
 * positive either, as the served one never saw the evaluation's held-out
 * events. The generative channel is not replayed (its quota is 0 here; see
 * `quotas` below).
 *
 * Output: one JSON header line ({"channels": [...], ...}), then one
 * tab-separated line per sample moment:
 *   user_id  timestamp_ms  item_id  rating  candidate ids (",")  channel masks (",")  recall scores (",")
 * candidates in recall's order; bit i of a mask = header.channels[i]; the
 * recall score is what the later stages read as `recall_score`.
 */
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { LocalStack } from "@recsys/local";
import {
  createClient,
  decodeCandidates,
  EventType,
  encodeUser,
  groupByUser,
  type Interaction,
  loadInteractions,
} from "@recsys/shared";
import { UserContextSchema } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
import { RecallService } from "@recsys/shared/gen/recsys/recall/v1/recall_service_pb.js";
import { homeFeed } from "../funnel.js";

/** Recall models trained on event sequences: the replay takes them from --sequence-store. */
const SEQUENCE_MODELS = ["kuaiformer", "sasrec"];
const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../..");
const { values } = parseArgs({
  options: {
    data: { type: "string", default: "data/ml-latest-small" },
    store: { type: "string", default: "var/models" },
    out: { type: "string" },
    "write-data": { type: "string" },
    "sequence-store": { type: "string" },
    contexts: { type: "string", default: "8" },
    users: { type: "string", default: "0" },
    concurrency: { type: "string", default: "4" },
    "history-length": { type: "string", default: "256" },
    "base-port": { type: "string", default: "57951" },
  },
});
const say = (m: string) => process.stderr.write(`[replay] ${m}\n`);
const intArg = (name: keyof typeof values, min: number) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`--${name} must be an integer >= ${min}, got ${values[name]}`);
  return v;
};
if (!values.out && !values["write-data"]) throw new Error("--out FILE or --write-data DIR is required");
const contexts = intArg("contexts", 1);
const maxUsers = intArg("users", 0);
const concurrency = intArg("concurrency", 1);
const historyLength = intArg("history-length", 1);

const dataDir = resolve(values.data);
const byUser = [...groupByUser(await loadInteractions(dataDir))];
const users = maxUsers > 0 ? byUser.slice(0, maxUsers) : byUser;

/** Per user: the held-out last event is dropped; the `contexts` before it are sample moments. */
const servedEvents: Interaction[] = []; // what the services read: all but the held-out events
const replayEvents: Interaction[] = []; // Swing and the replayed encoder: all but the last contexts + 1
const moments: Array<{ rows: Interaction[]; at: number }> = [];
for (const [, rows] of byUser) {
  if (rows.length < 2) {
    servedEvents.push(...rows);
    replayEvents.push(...rows);
    continue;
  }
  servedEvents.push(...rows.slice(0, -1));
  replayEvents.push(...rows.slice(0, Math.max(1, rows.length - 1 - contexts)));
}
for (const [, rows] of users) {
  // a moment needs at least one earlier event (the funnel's known-user path)
  for (let at = Math.max(1, rows.length - 1 - contexts); at < rows.length - 1; at++)
    moments.push({ rows, at });
}

const tsv = (events: readonly Interaction[]) =>
  `user_id\titem_id\ttimestamp\trating\n${events
    .map((r) => `${r.userId}\t${r.itemId}\t${Math.round(r.timestampMs / 1000)}\t${r.rating}`)
    .join("\n")}\n`;

function writeData(dir: string, events: readonly Interaction[]): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(dataDir, "items.tsv"), join(dir, "items.tsv"));
  writeFileSync(join(dir, "interactions.tsv"), tsv(events));
}

if (values["write-data"]) {
  const dir = resolve(values["write-data"]);
  writeData(dir, replayEvents);
  // A manifest of the dataset's own format, naming what was cut (the trainers read name and counts).
  const manifest = JSON.parse(readFileSync(join(dataDir, "manifest.json"), "utf8")) as Record<
    string,
    unknown
  >;
  writeFileSync(
    join(dir, "manifest.json"),
    JSON.stringify(
      { ...manifest, files: undefined, num_interactions: replayEvents.length, replay_cut: { contexts } },
      null,
      2,
    ),
  );
  say(`wrote ${dir}: ${replayEvents.length} events (each user's last ${contexts + 1} cut)`);
  process.exit(0);
}

const scratch = mkdtempSync(join(tmpdir(), "recsys-replay-"));
let stack: LocalStack | undefined;
try {
  const served = join(scratch, "data");
  const swingData = join(scratch, "swing-data");
  const store = join(scratch, "models");
  for (const [dir, events] of [
    [served, servedEvents],
    [swingData, replayEvents],
  ] as const) {
    writeData(dir, events);
    copyFileSync(join(dataDir, "manifest.json"), join(dir, "manifest.json"));
  }
  mkdirSync(store);
  const sequenceStore = resolve(values["sequence-store"] ?? values.store);
  for (const model of readdirSync(resolve(values.store))) {
    if (model === "swing") continue;
    const from = SEQUENCE_MODELS.includes(model) ? sequenceStore : resolve(values.store);
    if (existsSync(join(from, model))) symlinkSync(join(from, model), join(store, model));
  }
  execFileSync(
    process.execPath,
    [join(ROOT, "services/recall/dist/swing/build-cli.js"), "--data", swingData, "--store", store],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  say(`${moments.length} sample moments of ${users.length} users; starting the services`);
  stack = await LocalStack.start({
    rootDir: ROOT,
    basePort: Number(values["base-port"]),
    dataDir: served,
    modelStore: store,
    stateDir: join(scratch, "state"),
    // Under the temporary directory: the trainer image's /app is read-only.
    logDir: join(tmpdir(), "recsys-replay-log"),
    catalog: false,
    layout: "processes",
    serviceEnv: { recall: { RECSYS_RECALL_CHANNEL_TIMEOUT_MS: "2000" } },
  });
  const client = createClient(RecallService, stack.target("recall"));
  // The funnel's quotas, without `query` (no request here has a query) and without `generative`:
  // models trained on replays with it (the generative model retrained on the earlier events, like
  // KuaiFormer) ranked worse in the served funnel, twice, than models trained without it
  // (npm run eval:funnel HR@10 0.0969 and 0.0805 against 0.1013; docs/evaluation.md). Its candidates
  // reach rank through their recall score and the other channels' flags.
  const quotas = {
    ...Object.fromEntries(Object.entries(homeFeed.recall.channels).filter(([c]) => c !== "query")),
    generative: 0,
  };
  const channels: string[] = [];
  const bitOf = new Map<string, number>();
  const lines: string[] = new Array(moments.length);
  const started = performance.now();
  let next = 0;
  let candidates = 0;
  const worker = async () => {
    while (next < moments.length) {
      const k = next++;
      const { rows, at } = moments[k]!;
      const event = rows[at]!;
      // History as the user state holds it: events strictly before the moment, the last
      // `history-length` of them; older ones only mark items as seen.
      const before = rows.slice(0, at).filter((r) => r.timestampMs < event.timestampMs);
      const history = before.slice(-historyLength).map((r) => ({
        itemId: r.itemId,
        timestampMs: r.timestampMs,
        type: EventType.RATING,
        value: r.rating,
      }));
      const inHistory = new Set(history.map((h) => h.itemId));
      const earlier = [...new Set(before.map((r) => r.itemId))].filter((id) => !inHistory.has(id));
      const user = create(
        UserContextSchema,
        encodeUser({
          userId: event.userId,
          known: true,
          blockedItemIds: [],
          history,
          earlierSeenItemIds: earlier,
        }),
      );
      const res = await client.recall(
        {
          user,
          scene: "",
          query: "",
          excludeItemIds: [],
          maxCandidates: homeFeed.recall.maxCandidates,
          channelQuotas: quotas,
        },
        { timeoutMs: 30_000 },
      );
      if (res.degradations.length > 0) throw new Error(`recall degraded: ${res.degradations.join(", ")}`);
      const rowsOut = decodeCandidates(res.candidates);
      const ids = rowsOut.map((c) => c.itemId);
      const masks = rowsOut.map((c) => {
        let m = 0;
        for (const name of c.channels) {
          let bit = bitOf.get(name);
          if (bit === undefined) {
            bit = channels.length;
            channels.push(name);
            bitOf.set(name, bit);
          }
          m |= 1 << bit;
        }
        return m;
      });
      candidates += ids.length;
      lines[k] = [
        event.userId,
        event.timestampMs,
        event.itemId,
        event.rating,
        ids.join(","),
        masks.join(","),
        rowsOut.map((c) => Number(c.recallScore.toPrecision(6))).join(","),
      ].join("\t");
      if ((k + 1) % 1000 === 0) say(`${k + 1}/${moments.length}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  client.close();
  const seconds = (performance.now() - started) / 1000;
  const outPath = resolve(values.out!);
  mkdirSync(dirname(outPath), { recursive: true });
  const out = await open(outPath, "w");
  await out.write(
    `${JSON.stringify({ channels, contexts, users: users.length, moments: moments.length, quotas, data: values.data, store: values.store })}\n`,
  );
  await out.write(`${lines.join("\n")}\n`);
  await out.close();
  say(
    `wrote ${values.out}: ${moments.length} moments, ${(candidates / moments.length).toFixed(0)} candidates each, ` +
      `${seconds.toFixed(0)} s (${((1000 * seconds) / moments.length).toFixed(1)} ms per moment)`,
  );
} finally {
  await stack?.stopAll();
  rmSync(scratch, { recursive: true, force: true });
}
