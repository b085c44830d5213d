import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { CandidateBatchSchema, EventType, UserContextSchema } from "../gen/recsys/common/v1/common_pb.js";
import { RpcError } from "../grpc/errors.js";
import { decodeCandidates, decodeUser, encodeCandidates, encodeUser } from "./codec.js";
import { newCandidate } from "./types.js";

describe("columnar wire codec", () => {
  it("round-trips candidates through protobuf bytes", () => {
    const rows = [
      newCandidate("10", { score: 0.5, recallScore: 0.9, channels: ["swing", "popular"], reasonIndex: 3 }),
      newCandidate("20", {
        score: 0.25,
        prerankScore: 0.1,
        taskScores: { click: 0.3, like: 0.7 },
        reason: "trending",
      }),
      newCandidate("30", { channels: ["popular"], taskScores: { click: 0.2 } }),
    ];
    const wire = toBinary(CandidateBatchSchema, create(CandidateBatchSchema, encodeCandidates(rows)));
    const back = decodeCandidates(fromBinary(CandidateBatchSchema, Buffer.from(wire)));
    assert.deepEqual(back, rows);
  });

  it("round-trips an empty batch and a user", () => {
    assert.deepEqual(decodeCandidates(create(CandidateBatchSchema, encodeCandidates([]))), []);
    const user = {
      userId: "u1",
      known: true,
      blockedItemIds: ["9"],
      earlierSeenItemIds: ["0", "00"],
      history: [
        { itemId: "1", timestampMs: 1_700_000_000_123, type: EventType.RATING, value: 4.5 },
        { itemId: "2", timestampMs: 1_700_000_100_000, type: EventType.SKIP, value: 0 },
      ],
    };
    const wire = toBinary(UserContextSchema, create(UserContextSchema, encodeUser(user)));
    assert.deepEqual(decodeUser(fromBinary(UserContextSchema, Buffer.from(wire))), user);
  });

  it("rejects a column whose length does not match item_ids, naming the field", () => {
    const batch = create(CandidateBatchSchema, encodeCandidates([newCandidate("1"), newCandidate("2")]));
    batch.scores = batch.scores.subarray(0, 8);
    assert.throws(
      () => decodeCandidates(batch, "candidates"),
      (err: unknown) =>
        err instanceof RpcError &&
        err.code === status.INVALID_ARGUMENT &&
        err.message.startsWith("candidates.scores"),
    );
  });

  it("rejects an empty item id", () => {
    const batch = create(CandidateBatchSchema, encodeCandidates([newCandidate("1"), newCandidate("2")]));
    batch.itemIds = "1\n";
    assert.throws(() => decodeCandidates(batch), /candidates.item_ids\[1\]: must not be empty/);
  });
});
