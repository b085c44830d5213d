"""Offline evaluation on the per-user temporal split: full-corpus ranking (no sampled
negatives), the user's history items excluded from the ranking, HR@K and NDCG@K.

Also the two reference baselines in the same harness: popularity and item-CF.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import FIRST_ITEM_IDX, Dataset, Split, build_windows

KS = (10, 50, 100, 200)


def _targets(ds: Dataset, split: Split, which: str):
    pos = split.val_pos if which == "val" else split.test_pos
    users = np.flatnonzero(pos >= 0)
    return users, pos[users]


def _history_exclusion(ds: Dataset, users: np.ndarray, cuts: np.ndarray):
    """(row, item) pairs of every event of each user before its target."""
    rows, cols = [], []
    for r, (u, c) in enumerate(zip(users, cuts)):
        h = ds.items[ds.offsets[u]:c]
        rows.append(np.full(len(h), r))
        cols.append(h)
    return np.concatenate(rows), np.concatenate(cols)


def metrics_from_scores(scores: np.ndarray, targets: np.ndarray, ks=KS) -> tuple[dict, np.ndarray]:
    """scores [U, V] with excluded entries already -inf. rank = items scored strictly higher."""
    t = scores[np.arange(len(targets)), targets]
    rank = (scores > t[:, None]).sum(1)
    out = {}
    for k in ks:
        hit = rank < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2), 0.0).mean())
    return out, rank


def _mask(scores: np.ndarray, ds: Dataset, users, cuts, targets):
    scores[:, :FIRST_ITEM_IDX] = -np.inf
    r, c = _history_exclusion(ds, users, cuts)
    keep = c != targets[r]  # never exclude the target itself (not possible with deduplicated data)
    scores[r[keep], c[keep]] = -np.inf
    return scores


@torch.no_grad()
def user_interests(model, ds: Dataset, users: np.ndarray, cuts: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    out = []
    for i in range(0, len(users), batch_size):
        u, c = users[i:i + batch_size], cuts[i:i + batch_size]
        it, rb, gb = build_windows(ds, ds.offsets[u], c, model.cfg.max_seq_len)
        out.append(model(torch.from_numpy(it), torch.from_numpy(rb), torch.from_numpy(gb)))
    return torch.cat(out)


@torch.no_grad()
def evaluate_model(model, ds: Dataset, split: Split, which: str = "val", ks=KS, batch_size: int = 512) -> dict:
    was_training = model.training
    model.eval()
    users, cuts = _targets(ds, split, which)
    targets = ds.items[cuts]
    interests = user_interests(model, ds, users, cuts, batch_size)     # [U, K, D]
    items = model.item_vectors()                                        # [V, D]
    scores = torch.einsum("ukd,vd->ukv", interests, items).amax(1).numpy().astype(np.float64)
    scores = _mask(scores, ds, users, cuts, targets)
    m, _ = metrics_from_scores(scores, targets, ks)
    m["users"] = int(len(users))
    model.train(was_training)
    return m


def evaluate_baselines(ds: Dataset, split: Split, which: str = "val", ks=KS) -> dict:
    """Popularity and item-CF (cosine, user-item binary matrix) fitted on the events before
    the evaluated targets (the training part for val; training + val events for test)."""
    users, cuts = _targets(ds, split, which)
    targets = ds.items[cuts]
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    limit = split.train_end if which == "val" else np.where(split.test_pos >= 0, split.test_pos, ds.offsets[1:])
    fit = np.arange(len(ds.items)) < limit[user_of]
    V = ds.vocab_size
    counts = np.bincount(ds.items[fit], minlength=V).astype(np.float64)
    res = {}
    pop = np.tile(counts, (len(users), 1))
    res["popular"], _ = metrics_from_scores(_mask(pop, ds, users, cuts, targets), targets, ks)

    X = np.zeros((ds.num_users, V), dtype=np.float32)
    X[user_of[fit], ds.items[fit]] = 1.0
    norm = 1.0 / np.sqrt(np.maximum(X.sum(0), 1.0))
    Xn = X * norm[None, :]
    hist = X[users]                                   # the fitted history of each evaluated user
    cf = ((hist * norm[None, :]) @ Xn.T) @ Xn         # sum over history j of cos(j, i)
    cf = cf.astype(np.float64) + 1e-9 * counts[None, :]  # popularity breaks ties
    res["item_cf"], _ = metrics_from_scores(_mask(cf, ds, users, cuts, targets), targets, ks)
    for v in res.values():
        v["users"] = int(len(users))
    return res
