/**
 * Wire codec for the columnar UserContext and CandidateBatch messages.
 * Numeric columns travel as little-endian typed-array bytes: the generic
 * protobuf encoding of ~1,500 candidate sub-messages cost 10-40 ms per hop in
 * protobuf-es; typed-array columns cost well under 1 ms.
 */
import { endianness } from "node:os";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  CandidateBatch,
  CandidateBatchSchema,
  EventType,
  UserContext,
  UserContextSchema,
} from "../gen/recsys/common/v1/common_pb.js";
import { invalidArgument } from "../grpc/errors.js";
import type { Candidate, HistoryRow, UserView } from "./types.js";

if (endianness() !== "LE") throw new Error("the columnar wire codec assumes a little-endian host");

/** Id columns travel as one newline-joined string: one UTF-8 encode instead of one per id. */
export function joinIds(ids: readonly string[]): string {
  return ids.join("\n");
}

export function splitIds(joined: string): string[] {
  return joined.length === 0 ? [] : joined.split("\n");
}

const asBytes = (view: ArrayBufferView): Uint8Array =>
  new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

/** Copies into an aligned buffer (protobuf byte fields may be unaligned slices). */
function column<T>(
  bytes: Uint8Array,
  width: number,
  n: number,
  field: string,
  make: (b: ArrayBuffer) => T,
): T {
  if (bytes.byteLength !== n * width) {
    throw invalidArgument(field, `expected ${n} values (${n * width} bytes), got ${bytes.byteLength} bytes`);
  }
  // new Uint8Array(view) copies into a fresh, aligned ArrayBuffer (Buffer.slice would not copy).
  return make(new Uint8Array(bytes).buffer);
}

function optionalColumn<T>(
  bytes: Uint8Array,
  width: number,
  n: number,
  field: string,
  make: (b: ArrayBuffer) => T,
) {
  return bytes.byteLength === 0 ? undefined : column(bytes, width, n, field, make);
}

export function encodeUser(user: UserView): MessageInitShape<typeof UserContextSchema> {
  const n = user.history.length;
  const ts = new Float64Array(n);
  const types = new Uint8Array(n);
  const values = new Float32Array(n);
  const ids: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = user.history[i]!;
    ids[i] = e.itemId;
    ts[i] = e.timestampMs;
    types[i] = e.type;
    values[i] = e.value;
  }
  return {
    userId: user.userId,
    known: user.known,
    blockedItemIds: [...user.blockedItemIds],
    historyItemIds: joinIds(ids),
    historyTimestampsMs: asBytes(ts),
    historyTypes: types,
    historyValues: asBytes(values),
    earlierSeenItemIds: joinIds(user.earlierSeenItemIds),
  };
}

export function decodeUser(msg: UserContext, field = "user"): UserView {
  const historyIds = splitIds(msg.historyItemIds);
  const n = historyIds.length;
  const ts = column(
    msg.historyTimestampsMs,
    8,
    n,
    `${field}.history_timestamps_ms`,
    (b) => new Float64Array(b),
  );
  const types = column(msg.historyTypes, 1, n, `${field}.history_types`, (b) => new Uint8Array(b));
  const values = column(msg.historyValues, 4, n, `${field}.history_values`, (b) => new Float32Array(b));
  const history: HistoryRow[] = new Array(n);
  for (let i = 0; i < n; i++) {
    history[i] = {
      itemId: historyIds[i]!,
      timestampMs: ts[i]!,
      type: types[i]! as EventType,
      value: values[i]!,
    };
  }
  return {
    userId: msg.userId,
    known: msg.known,
    blockedItemIds: msg.blockedItemIds,
    history,
    earlierSeenItemIds: splitIds(msg.earlierSeenItemIds),
  };
}

export function encodeCandidates(rows: readonly Candidate[]): MessageInitShape<typeof CandidateBatchSchema> {
  const n = rows.length;
  const scores = new Float64Array(n);
  const recall = new Float64Array(n);
  const prerank = new Float64Array(n);
  const masks = new Uint32Array(n);
  const reasonIdx = new Int32Array(n);
  const ids: string[] = new Array(n);
  const channelNames: string[] = [];
  const channelBit = new Map<string, number>();
  const taskColumns = new Map<string, Float64Array>();
  let anyReason = false;
  for (let i = 0; i < n; i++) {
    const c = rows[i]!;
    ids[i] = c.itemId;
    scores[i] = c.score;
    recall[i] = c.recallScore;
    prerank[i] = c.prerankScore;
    reasonIdx[i] = c.reasonIndex;
    let mask = 0;
    for (const ch of c.channels) {
      let bit = channelBit.get(ch);
      if (bit === undefined) {
        bit = channelNames.length;
        if (bit >= 32) throw new Error("more than 32 distinct recall channels in one batch");
        channelBit.set(ch, bit);
        channelNames.push(ch);
      }
      mask |= 1 << bit;
    }
    masks[i] = mask >>> 0;
    for (const task in c.taskScores) {
      let col = taskColumns.get(task);
      if (!col) taskColumns.set(task, (col = new Float64Array(n).fill(Number.NaN)));
      col[i] = c.taskScores[task]!;
    }
    if (c.reason) anyReason = true;
  }
  return {
    itemIds: joinIds(ids),
    scores: asBytes(scores),
    recallScores: asBytes(recall),
    prerankScores: asBytes(prerank),
    channelNames,
    channelMasks: asBytes(masks),
    reasonHistoryIndexes: asBytes(reasonIdx),
    taskScores: [...taskColumns.entries()].map(([task, values]) => ({ task, values: asBytes(values) })),
    reasons: anyReason ? rows.map((c) => c.reason) : [],
  };
}

export function decodeCandidates(batch: CandidateBatch | undefined, field = "candidates"): Candidate[] {
  if (!batch) return [];
  const itemIds = splitIds(batch.itemIds);
  const n = itemIds.length;
  const f64 = (b: ArrayBuffer) => new Float64Array(b);
  const scores = optionalColumn(batch.scores, 8, n, `${field}.scores`, f64);
  const recall = optionalColumn(batch.recallScores, 8, n, `${field}.recall_scores`, f64);
  const prerank = optionalColumn(batch.prerankScores, 8, n, `${field}.prerank_scores`, f64);
  const masks = optionalColumn(batch.channelMasks, 4, n, `${field}.channel_masks`, (b) => new Uint32Array(b));
  const reasonIdx = optionalColumn(
    batch.reasonHistoryIndexes,
    4,
    n,
    `${field}.reason_history_indexes`,
    (b) => new Int32Array(b),
  );
  const tasks = batch.taskScores.map((t) => ({
    task: t.task,
    values: column(t.values, 8, n, `${field}.task_scores[${t.task}]`, f64),
  }));
  if (batch.reasons.length !== 0 && batch.reasons.length !== n) {
    throw invalidArgument(`${field}.reasons`, `expected 0 or ${n} entries, got ${batch.reasons.length}`);
  }
  if (batch.channelNames.length > 32) throw invalidArgument(`${field}.channel_names`, "at most 32 channels");
  const rows: Candidate[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const itemId = itemIds[i]!;
    if (itemId.length === 0) throw invalidArgument(`${field}.item_ids[${i}]`, "must not be empty");
    const channels: string[] = [];
    const mask = masks?.[i] ?? 0;
    if (mask !== 0) {
      for (let bit = 0; bit < batch.channelNames.length; bit++)
        if (mask & (1 << bit)) channels.push(batch.channelNames[bit]!);
    }
    const taskScores: Record<string, number> = {};
    for (const t of tasks) {
      const v = t.values[i]!;
      if (!Number.isNaN(v)) taskScores[t.task] = v;
    }
    rows[i] = {
      itemId,
      score: scores?.[i] ?? 0,
      recallScore: recall?.[i] ?? 0,
      prerankScore: prerank?.[i] ?? 0,
      channels,
      reasonIndex: reasonIdx?.[i] ?? -1,
      taskScores,
      reason: batch.reasons[i] ?? "",
    };
  }
  return rows;
}
