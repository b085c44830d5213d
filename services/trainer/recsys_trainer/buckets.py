"""Bucket rules for the encoder's side inputs.

The TypeScript serving side reimplements these rules exactly (docs/models.md),
so keep them small, integer-valued and free of float edge cases.
"""

from __future__ import annotations

import math

import numpy as np

PAD = 0

# rating_bucket: 0 padding, 1..10 = ratings 0.5..5 in half stars, 11.. = online event types.
RATING_BUCKETS_FOR_RATINGS = 10
EVENT_TYPE_BUCKETS = {"click": 11, "like": 12, "watch": 13, "share": 14, "skip": 15, "dislike": 16}
NUM_RATING_BUCKETS = 17

# gap_bucket: 0 padding, 1 the oldest event of the window, 2..31 log2 minutes since the previous event.
GAP_FIRST = 1
GAP_MAX_LOG2 = 29
NUM_GAP_BUCKETS = 32

RATING_RULE = (
    "0 = padding; a rating r in [0.5, 5] -> clip(floor(r*2 + 0.5), 1, 10) (half stars 0.5..5 -> 1..10); "
    "event types without a rating: 11 click, 12 like, 13 watch, 14 share, 15 skip, 16 dislike; 17 rows"
)
GAP_RULE = (
    "0 = padding; 1 = the oldest event of the window (the first non-padding position, whatever came before it); "
    "otherwise gap_s = max(0, timestamp - timestamp of the previous event in the window, in seconds) and "
    "bucket = 2 + min(29, floor(log2(1 + gap_s / 60))); 32 rows"
)


def rating_bucket(rating: float) -> int:
    """One rating (0.5..5) -> 1..10. floor(x + 0.5) is JavaScript's Math.round for x >= 0."""
    return int(min(RATING_BUCKETS_FOR_RATINGS, max(1, math.floor(rating * 2 + 0.5))))


def rating_buckets(ratings: np.ndarray) -> np.ndarray:
    r = np.floor(np.asarray(ratings, dtype=np.float64) * 2 + 0.5)
    return np.clip(r, 1, RATING_BUCKETS_FOR_RATINGS).astype(np.int64)


def event_type_bucket(event_type: str) -> int:
    return EVENT_TYPE_BUCKETS[event_type]


def gap_bucket(gap_s: float | None) -> int:
    """gap_s = seconds since the previous event in the window; None for the oldest event."""
    if gap_s is None:
        return GAP_FIRST
    return 2 + min(GAP_MAX_LOG2, int(math.floor(math.log2(1 + max(0.0, gap_s) / 60))))


def gap_buckets_from_gaps(gaps_s: np.ndarray) -> np.ndarray:
    """Vectorised gap_bucket for gaps that have a predecessor (never GAP_FIRST)."""
    g = np.maximum(np.asarray(gaps_s, dtype=np.float64), 0.0)
    return (2 + np.minimum(GAP_MAX_LOG2, np.floor(np.log2(1 + g / 60)))).astype(np.int64)


def describe() -> dict:
    return {
        "rating": {"rule": RATING_RULE, "num_buckets": NUM_RATING_BUCKETS, "padding": PAD,
                   "event_types": dict(EVENT_TYPE_BUCKETS)},
        "gap": {"rule": GAP_RULE, "num_buckets": NUM_GAP_BUCKETS, "padding": PAD, "first": GAP_FIRST},
    }
