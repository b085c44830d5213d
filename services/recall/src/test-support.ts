// Re-exports used by the tests, so they import from one place.

export { type Candidate, type CandidateSource, type Interaction, newCandidate } from "@recsys/shared";
export { EventType as EventTypeOf } from "@recsys/shared/gen/recsys/common/v1/common_pb.js";
