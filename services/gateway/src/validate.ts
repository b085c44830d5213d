import { invalidArgument, requireId, requireMaxBytes, requireMaxLength } from "@recsys/shared";
import type { RecommendRequest } from "@recsys/shared/gen/recsys/recommend/v1/recommend_service_pb.js";

export interface RecommendLimits {
  readonly maxCount: number;
}

/** Validates a public Recommend request; returns the effective count. */
export function validateRecommend(req: RecommendRequest, limits: RecommendLimits): { count: number } {
  requireId(req.userId, "user_id");
  // proto3 cannot tell an unset count from 0, so 0 is rejected like any other out-of-range value.
  if (req.count < 1 || req.count > limits.maxCount) {
    throw invalidArgument("count", `must be between 1 and ${limits.maxCount}, got ${req.count}`);
  }
  requireMaxBytes(req.scene, "scene", 64);
  requireMaxBytes(req.query, "query", 1024);
  requireMaxLength(req.excludeItemIds, "exclude_item_ids", 1000);
  for (const [i, id] of req.excludeItemIds.entries()) requireId(id, `exclude_item_ids[${i}]`);
  const contextKeys = Object.keys(req.context);
  if (contextKeys.length > 64)
    throw invalidArgument("context", `at most 64 entries, got ${contextKeys.length}`);
  for (const [k, v] of Object.entries(req.context)) {
    requireMaxBytes(k, "context key", 128);
    requireMaxBytes(v, `context[${k}]`, 1024);
  }
  return { count: req.count };
}
