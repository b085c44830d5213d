/**
 * Poison records: a record a consumer cannot decode (or that fails its
 * checks) is skipped, counted and written to a dead-letter file with its
 * topic, partition, offset, reason and bytes; the consumer goes on. Retrying
 * the batch could never succeed (the bytes do not change), and on the
 * compacted items topic the record never goes away: a consumer that retried
 * would stop for good.
 *
 * The dead-letter file is JSON lines, one per record, under
 * `<RECSYS_BUS_DIR>/dead-letter/<group>.jsonl` (both buses: it is for an
 * operator to inspect and, once the producer is fixed, to republish).
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { fromBinary } from "@bufbuild/protobuf";
import type { Logger } from "../log.js";
import type { BusMetrics } from "./metrics.js";

export interface RawRecord {
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: string | bigint | number;
  readonly value: Uint8Array;
}

export class DeadLetters {
  readonly path: string;
  /** Records written here by this process. */
  count = 0;

  constructor(
    busDir: string,
    readonly group: string,
    private readonly logger?: Logger,
    private readonly metrics?: BusMetrics,
  ) {
    this.path = join(busDir, "dead-letter", `${group.replace(/[^A-Za-z0-9._-]/g, "_")}.jsonl`);
  }

  add(record: RawRecord, topic: string, reason: string): void {
    this.count++;
    this.metrics?.poisonTotal.inc({ group: this.group, topic });
    const offset = record.offset === undefined ? null : String(record.offset);
    this.logger?.error(
      {
        group: this.group,
        topic,
        partition: record.partition ?? null,
        offset,
        reason,
        deadLetter: this.path,
      },
      "poison record skipped (written to the dead-letter file)",
    );
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      appendFileSync(
        this.path,
        `${JSON.stringify({
          at: new Date().toISOString(),
          group: this.group,
          topic,
          partition: record.partition ?? null,
          offset,
          reason,
          value: Buffer.from(record.value).toString("base64"),
        })}\n`,
      );
    } catch (err) {
      // the record is still skipped and counted: a full disk must not stop the consumer either
      this.logger?.error({ err, deadLetter: this.path }, "cannot write the dead-letter file");
    }
  }
}

/**
 * Decodes each record as `schema`; records that fail to decode, or that `check` refuses (returning
 * a reason), go to `dead` and are left out. The others come back with their record, in order.
 */
export function decodeValid<D extends DescMessage, R extends RawRecord>(
  schema: D,
  topic: string,
  records: readonly R[],
  dead: DeadLetters,
  check?: (message: MessageShape<D>) => string | undefined,
): Array<{ record: R; message: MessageShape<D> }> {
  const out: Array<{ record: R; message: MessageShape<D> }> = [];
  for (const record of records) {
    let message: MessageShape<D>;
    try {
      message = fromBinary(schema, record.value);
    } catch (err) {
      dead.add(
        record,
        record.topic ?? topic,
        `undecodable: ${err instanceof Error ? err.message : String(err)}`,
      );
      continue;
    }
    const refused = check?.(message);
    if (refused) {
      dead.add(record, record.topic ?? topic, refused);
      continue;
    }
    out.push({ record, message });
  }
  return out;
}
