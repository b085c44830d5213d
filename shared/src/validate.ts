/** Request validation helpers: every failure is INVALID_ARGUMENT naming the field. */
import { decodeUser } from "./funnel/codec.js";
import type { UserView } from "./funnel/types.js";
import type { UserContext } from "./gen/recsys/common/v1/common_pb.js";
import { invalidArgument } from "./grpc/errors.js";

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/**
 * Characters that make an id look like another one: bidirectional controls (which reorder what
 * is displayed) and zero-width characters (invisible).
 */
const INVISIBLE_CHARACTERS = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

/**
 * A non-empty identifier of at most `maxBytes` UTF-8 bytes, without control, bidirectional or
 * zero-width characters, in Unicode NFC form (so one visible id has one encoding: an id is
 * refused rather than silently merged with another).
 */
export function requireId(value: string, field: string, maxBytes = 128): string {
  if (value.length === 0) throw invalidArgument(field, "must not be empty");
  if (CONTROL_CHARACTERS.test(value)) throw invalidArgument(field, "must not contain control characters");
  if (INVISIBLE_CHARACTERS.test(value))
    throw invalidArgument(field, "must not contain bidirectional control or zero-width characters");
  if (value.normalize("NFC") !== value) throw invalidArgument(field, "must be in Unicode NFC form");
  if (Buffer.byteLength(value, "utf8") > maxBytes)
    throw invalidArgument(field, `must be at most ${maxBytes} bytes`);
  return value;
}

export function requireIntInRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(field, `must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

export function requireMaxLength<T>(values: readonly T[], field: string, max: number): readonly T[] {
  if (values.length > max) throw invalidArgument(field, `at most ${max} entries, got ${values.length}`);
  return values;
}

export function requireMaxBytes(value: string, field: string, maxBytes: number): string {
  if (Buffer.byteLength(value, "utf8") > maxBytes)
    throw invalidArgument(field, `must be at most ${maxBytes} bytes`);
  return value;
}

/** Validates and decodes the UserContext every internal stage receives. */
export function requireUser(user: UserContext | undefined, field = "user"): UserView {
  if (!user) throw invalidArgument(field, "is required");
  requireId(user.userId, `${field}.user_id`);
  const view = decodeUser(user, field);
  for (const [i, e] of view.history.entries()) {
    if (e.itemId.length === 0) throw invalidArgument(`${field}.history_item_ids[${i}]`, "must not be empty");
  }
  return view;
}
