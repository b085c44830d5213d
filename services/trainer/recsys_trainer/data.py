"""Dataset loading, item vocabulary, per-user temporal split and window building.

Split (DESIGN.md "Data and evaluation"): per user, events sorted by
(timestamp, item_id) as in interactions.tsv; the LAST event is the test target,
the second-to-last the validation target, everything before is training data.
Users with fewer than 3 events contribute training events only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import buckets

PAD_IDX = 0
OOV_IDX = 1
FIRST_ITEM_IDX = 2
YEAR_MIN, YEAR_MAX = 1900, 2030      # release years are clipped to this range
NUM_YEAR_BUCKETS = YEAR_MAX - YEAR_MIN + 2


@dataclass
class Dataset:
    data_dir: Path
    item_ids: list[str]          # vocab index i >= 2 -> item_ids[i - 2]
    item_genres: np.ndarray      # [vocab_size, max_genres] int64, 0 = none
    genre_names: list[str]       # genre index g >= 1 -> genre_names[g - 1]
    item_years: np.ndarray       # [vocab_size] int64 release-year bucket, 0 = unknown
    # all events, sorted by user then (timestamp, item_id); user u owns [offsets[u], offsets[u+1])
    items: np.ndarray            # int64 vocab index
    ratings: np.ndarray          # int64 rating bucket
    timestamps: np.ndarray       # int64 unix seconds
    offsets: np.ndarray          # int64 [num_users + 1]
    user_ids: list[str]
    manifest: dict

    @property
    def vocab_size(self) -> int:
        return len(self.item_ids) + FIRST_ITEM_IDX

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_interactions(self) -> int:
        return int(len(self.items))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def vocab_tsv(self) -> str:
        lines = ["index\titem_id"]
        lines += [f"{i + FIRST_ITEM_IDX}\t{item}" for i, item in enumerate(self.item_ids)]
        return "\n".join(lines) + "\n"


def load_dataset(data_dir: str | Path) -> Dataset:
    data_dir = Path(data_dir)
    items_df = pd.read_csv(data_dir / "items.tsv", sep="\t", dtype=str, keep_default_na=False)
    inter = pd.read_csv(
        data_dir / "interactions.tsv", sep="\t",
        dtype={"user_id": str, "item_id": str, "timestamp": np.int64, "rating": np.float64},
    )
    manifest = {}
    if (data_dir / "manifest.json").exists():
        manifest = json.loads((data_dir / "manifest.json").read_text())

    # Vocabulary: every catalogue item, in items.tsv order (sorted by numeric id).
    item_ids = items_df["item_id"].tolist()
    index_of = {item: i + FIRST_ITEM_IDX for i, item in enumerate(item_ids)}
    vocab_size = len(item_ids) + FIRST_ITEM_IDX

    genre_lists = [[g for g in s.split("|") if g] for s in items_df["genres"].tolist()]
    genre_names = sorted({g for gl in genre_lists for g in gl})
    genre_index = {g: i + 1 for i, g in enumerate(genre_names)}
    max_genres = max([len(gl) for gl in genre_lists] + [1])
    item_genres = np.zeros((vocab_size, max_genres), dtype=np.int64)
    for i, gl in enumerate(genre_lists):
        for j, g in enumerate(gl):
            item_genres[i + FIRST_ITEM_IDX, j] = genre_index[g]

    years = pd.to_numeric(items_df["year"], errors="coerce").to_numpy(np.float64)
    item_years = np.zeros(vocab_size, dtype=np.int64)
    item_years[FIRST_ITEM_IDX:] = np.where(np.isnan(years), 0,
                                           np.clip(np.nan_to_num(years), YEAR_MIN, YEAR_MAX) - YEAR_MIN + 1)

    # Keep the documented order explicitly (user, timestamp, item) rather than trusting file order.
    inter["_uid"] = pd.to_numeric(inter["user_id"], errors="coerce")
    inter["_iid"] = pd.to_numeric(inter["item_id"], errors="coerce")
    inter = inter.sort_values(["_uid", "user_id", "timestamp", "_iid", "item_id"], kind="stable")
    items = inter["item_id"].map(index_of).fillna(OOV_IDX).to_numpy(np.int64)
    ratings = buckets.rating_buckets(inter["rating"].to_numpy())
    timestamps = inter["timestamp"].to_numpy(np.int64)
    users = inter["user_id"].to_numpy()
    change = np.flatnonzero(users[1:] != users[:-1]) + 1
    offsets = np.concatenate([[0], change, [len(users)]]).astype(np.int64)
    user_ids = [str(users[o]) for o in offsets[:-1]]
    return Dataset(data_dir, item_ids, item_genres, genre_names, item_years, items, ratings, timestamps,
                   offsets, user_ids, manifest)


@dataclass
class Split:
    """Per-user last-1 holdout. train_end[u] is the end (exclusive) of u's training events."""
    train_end: np.ndarray   # [U] global event index
    val_pos: np.ndarray     # [U] global index of the validation target, -1 if none
    test_pos: np.ndarray    # [U] global index of the test target, -1 if none


def per_user_split(ds: Dataset) -> Split:
    start, end = ds.offsets[:-1], ds.offsets[1:]
    n = end - start
    has = n >= 3
    test_pos = np.where(has, end - 1, -1)
    val_pos = np.where(has, end - 2, -1)
    train_end = np.where(has, end - 2, end)
    return Split(train_end.astype(np.int64), val_pos.astype(np.int64), test_pos.astype(np.int64))


def build_windows(ds: Dataset, user_start: np.ndarray, cut: np.ndarray, max_len: int,
                  item_dropout: float = 0.0, rng: np.random.Generator | None = None):
    """Encoder inputs for histories [user_start, cut) (global indices), left-padded to max_len.

    Returns item_idx, rating_bucket, gap_bucket: int64 [B, max_len]. The oldest event
    of each window gets gap bucket 1 (contract: gaps are computed inside the window).
    """
    user_start = np.asarray(user_start, dtype=np.int64)
    cut = np.asarray(cut, dtype=np.int64)
    idx = cut[:, None] - max_len + np.arange(max_len, dtype=np.int64)[None, :]
    valid = idx >= user_start[:, None]
    safe = np.where(valid, idx, 0)
    items = np.where(valid, ds.items[safe], PAD_IDX)
    ratings = np.where(valid, ds.ratings[safe], buckets.PAD)
    prev_valid = np.zeros_like(valid)
    prev_valid[:, 1:] = valid[:, :-1]
    gaps = ds.timestamps[safe] - ds.timestamps[np.maximum(safe - 1, 0)]
    gap_b = np.where(prev_valid, buckets.gap_buckets_from_gaps(gaps), buckets.GAP_FIRST)
    gap_b = np.where(valid, gap_b, buckets.PAD)
    if item_dropout > 0 and rng is not None:
        drop = valid & (rng.random(items.shape) < item_dropout)
        items = np.where(drop, OOV_IDX, items)
    return items.astype(np.int64), ratings.astype(np.int64), gap_b.astype(np.int64)


def item_counts(ds: Dataset, split: Split) -> np.ndarray:
    """Training-part interaction count of every vocab index."""
    mask = np.zeros(len(ds.items), dtype=bool)
    for s, e in zip(ds.offsets[:-1], split.train_end):
        mask[s:e] = True
    return np.bincount(ds.items[mask], minlength=ds.vocab_size).astype(np.float64)


def train_mask(ds: Dataset, split: Split) -> np.ndarray:
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    return np.arange(len(ds.items)) < split.train_end[user_of]
