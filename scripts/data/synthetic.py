"""Synthetic interaction data in the canonical format (vectorised numpy).

Model:
  * items belong to one of K clusters (Dirichlet-sized); each cluster has a
    1-3 genre signature from the MovieLens genre list, and an item's genres are
    its cluster's signature with a little noise, so genre-based scorers have
    signal;
  * item popularity is Zipf(--zipf) over a random ranking of all items;
  * each user mixes 1-3 interest clusters (Dirichlet weights) and has a
    log-normal activity level;
  * a user's events come in sessions (geometric length, mean --session-len):
    each session focuses on one of the user's clusters; per event there is a
    --explore chance of a globally popular item and a --drift chance of another
    of the user's clusters; inside a session events are seconds-minutes apart,
    sessions are days apart;
  * ratings 1-5: higher when the item's cluster is one of the user's
    interests, plus user/item biases and noise;
  * a user rates an item at most once: repeated (user,item) draws are
    re-drawn (same distribution first, i.e. roughly sampling without
    replacement; then uniformly inside the user's clusters; then uniformly over
    the catalogue); any still repeated are dropped, so num_interactions can end
    slightly below --events.

Every catalogue item is written to items.tsv, with or without interactions.

usage: synthetic.py --out DIR [--users N] [--items N] [--events N] [--clusters K] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from canonical import log, write_dataset  # noqa: E402

GENERATOR = "synthetic-v1"
GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
T_START = 1577836800  # 2020-01-01T00:00:00Z
T_END = 1704067200  # 2024-01-01T00:00:00Z


def _genre_strings(masks: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(masks, return_inverse=True)
    strs = np.array(["|".join(g for b, g in enumerate(GENRES) if (m >> b) & 1) for m in uniq.tolist()], dtype=object)
    return strs[inv]


def generate(
    users: int,
    items: int,
    events: int,
    clusters: int,
    seed: int,
    zipf: float = 1.0,
    explore: float = 0.1,
    drift: float = 0.15,
    session_len: float = 8.0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    if users < 1 or items < 1 or clusters < 1:
        raise SystemExit("data: --users, --items and --clusters must be >= 1")
    if events < users:
        raise SystemExit("data: --events must be >= --users (every user gets at least one event)")
    K = min(clusters, items)
    rng = np.random.default_rng(seed)
    G = len(GENRES)

    # ---- items ---------------------------------------------------------
    sizes_p = rng.dirichlet(np.full(K, 2.0))
    item_cluster = np.empty(items, dtype=np.int64)
    item_cluster[:K] = np.arange(K)  # no empty cluster
    item_cluster[K:] = rng.choice(K, size=items - K, p=sizes_p)
    item_cluster = rng.permutation(item_cluster)
    rank = rng.permutation(items).astype(np.float64)  # 0 = most popular
    w = 1.0 / (rank + 1.0) ** zipf

    # cluster genre signatures: primary genre + optional 2nd/3rd
    primary = (np.arange(K) + rng.integers(0, G)) % G
    sig = (1 << primary).astype(np.int64)
    for p_extra in (0.7, 0.3):
        extra = rng.integers(0, G, K)
        sig |= np.where(rng.random(K) < p_extra, 1 << extra, 0)
    imask = sig[item_cluster]
    # noise: drop each non-primary genre with p=0.15, add a random genre with p=0.1
    keep_bits = np.zeros(items, dtype=np.int64)
    for b in range(G):
        keep_bits |= np.where(rng.random(items) >= 0.15, 1 << b, 0)
    imask = (imask & keep_bits) | (1 << primary[item_cluster])
    imask |= np.where(rng.random(items) < 0.1, 1 << rng.integers(0, G, items), 0)
    year = np.clip(2023 - np.floor(rng.exponential(12.0, items)), 1920, 2023).astype(np.int64)
    item_bias = rng.normal(0.0, 0.35, items) + 0.2 * (np.log(w) - np.log(w).mean()) / (np.log(w).std() + 1e-9)

    # per-cluster sampling table: items sorted by cluster; within cluster c the
    # normalised cumulative popularity is shifted into (c, c+1]
    order = np.argsort(item_cluster, kind="stable")
    cl_sorted = item_cluster[order]
    w_sorted = w[order]
    csum = np.cumsum(w_sorted)
    cl_count = np.bincount(cl_sorted, minlength=K)
    cl_end = np.cumsum(cl_count)
    cl_start = cl_end - cl_count
    before = np.concatenate(([0.0], csum))[cl_start]
    cl_mass = csum[cl_end - 1] - before
    table = (csum - before[cl_sorted]) / cl_mass[cl_sorted] + cl_sorted
    glob = np.cumsum(w)
    glob /= glob[-1]

    def pick_in_cluster(c: np.ndarray) -> np.ndarray:
        u = 1.0 - rng.random(len(c))  # (0, 1]
        idx = np.searchsorted(table, c + u, side="left")
        idx = np.clip(idx, cl_start[c], cl_end[c] - 1)
        return order[idx]

    def pick_global(n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(glob, rng.random(n), side="right"), items - 1)

    # ---- users ---------------------------------------------------------
    cl_p = 0.5 * cl_mass / cl_mass.sum() + 0.5 / K
    n_int = rng.choice([1, 2, 3], size=users, p=[0.4, 0.4, 0.2])
    u_cl = rng.choice(K, size=(users, 3), p=cl_p)
    u_w = rng.gamma(1.0, size=(users, 3)) * (np.arange(3)[None, :] < n_int[:, None])
    u_w /= u_w.sum(axis=1, keepdims=True)
    u_cl = np.where(u_w > 0, u_cl, u_cl[:, :1])  # unused slots repeat slot 0 (never sampled)
    u_cw = np.cumsum(u_w, axis=1)
    user_bias = rng.normal(0.0, 0.4, users)

    def pick_user_cluster(u: np.ndarray) -> np.ndarray:
        x = rng.random(len(u))
        col = (x >= u_cw[u, 0]).astype(np.int64) + (x >= u_cw[u, 1])
        return u_cl[u, np.minimum(col, 2)]

    # events per user: 1 + multinomial over log-normal activity, capped
    act = rng.lognormal(0.0, 1.0, users)
    counts = 1 + rng.multinomial(events - users, act / act.sum())
    cap = max(1, items // 4)
    over = counts > cap
    if over.any():  # move the excess to the other users
        excess = int((counts[over] - cap).sum())
        counts[over] = cap
        room = np.where(~over, cap - counts, 0)
        if room.sum() > 0:
            add = rng.multinomial(excess, room / room.sum())
            counts += np.minimum(add, room)
    E = int(counts.sum())
    ev_user = np.repeat(np.arange(users, dtype=np.int64), counts)
    u_first = np.cumsum(counts) - counts  # index of each user's first event

    # sessions
    new_sess = rng.random(E) < 1.0 / session_len
    new_sess[u_first] = True
    sess_id = np.cumsum(new_sess) - 1
    sess_cluster = pick_user_cluster(ev_user[new_sess])[sess_id]

    def draw_items(idx: np.ndarray, p_explore: float) -> np.ndarray:
        x = rng.random(len(idx))
        c = sess_cluster[idx].copy()
        d = (x >= p_explore) & (x < p_explore + drift)
        c[d] = pick_user_cluster(ev_user[idx[d]])
        it = pick_in_cluster(c)
        g = x < p_explore
        it[g] = pick_global(int(g.sum()))
        return it

    ev_item = draw_items(np.arange(E), explore)

    # A user rates an item once: re-draw repeated (user,item) pairs, first from
    # the same distribution (~ sampling without replacement), then uniformly
    # inside the user's clusters, then uniformly over the catalogue; drop what
    # is still repeated. Incremental: only the re-drawn events are checked
    # against the sorted keys of the events already accepted.
    key = ev_user * items + ev_item
    o = np.argsort(key, kind="stable")
    ks = key[o]
    first = np.ones(E, dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    kept = ks[first]
    pending = o[~first]
    redrawn = len(pending)
    for rnd in range(24):
        if len(pending) == 0:
            break
        if rnd < 14:
            new_items = draw_items(pending, explore)
        elif rnd < 20:
            c = pick_user_cluster(ev_user[pending])
            new_items = order[cl_start[c] + np.floor(rng.random(len(c)) * cl_count[c]).astype(np.int64)]
        else:
            new_items = rng.integers(0, items, len(pending))
        nk = ev_user[pending] * items + new_items
        pos = np.searchsorted(kept, nk)
        hit = kept[np.minimum(pos, len(kept) - 1)] == nk
        uniq = np.zeros(len(nk), dtype=bool)
        uniq[np.unique(nk, return_index=True)[1]] = True
        ok = ~hit & uniq
        ev_item[pending[ok]] = new_items[ok]
        add = np.sort(nk[ok])
        kept = np.insert(kept, np.searchsorted(kept, add), add)
        pending = pending[~ok]
    keep = np.ones(E, dtype=bool)
    keep[pending] = False  # still repeated after all rounds: dropped

    # timestamps: seconds apart inside a session, days apart between sessions
    gap = np.where(new_sess, rng.exponential(3 * 86400.0, E), 5.0 + rng.exponential(90.0, E))
    gap[u_first] = 0.0
    cs = np.cumsum(gap)
    t_rel = cs - cs[u_first][ev_user]
    dur = t_rel[np.cumsum(counts) - 1]
    span = float(T_END - T_START)
    scale = np.minimum(1.0, span / np.maximum(dur, 1.0))
    start = T_START + rng.random(users) * (span - dur * scale)
    ts = np.floor(start[ev_user] + t_rel * scale[ev_user]).astype(np.int64)

    # ratings: cluster match matters most
    ic = item_cluster[ev_item]
    match = (u_cl[ev_user] == ic[:, None]).any(axis=1)
    score = 2.6 + 1.3 * match + user_bias[ev_user] + item_bias[ev_item] + rng.normal(0.0, 0.8, E)
    rating = np.clip(np.rint(score), 1, 5)

    inter = pd.DataFrame(
        {"user_id": ev_user[keep] + 1, "item_id": ev_item[keep] + 1, "timestamp": ts[keep], "rating": rating[keep]}
    )
    ids = np.arange(1, items + 1, dtype=np.int64)
    titles = pd.Series(ids.astype(str), dtype=object)
    titles = "Synthetic item " + titles + " (cluster " + pd.Series(item_cluster.astype(str), dtype=object) + ")"
    items_df = pd.DataFrame({"item_id": ids, "title": titles, "genres": _genre_strings(imask), "year": year})
    stats = {"cluster_match_rate": float(match[keep].mean()), "redrawn": redrawn, "dropped": int(len(pending))}
    return inter, items_df, stats


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--events", type=int, default=500000)
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args(argv)
    t0 = time.time()
    inter, items, stats = generate(a.users, a.items, a.events, a.clusters, a.seed)
    log(
        f"generated {len(inter)} events, {a.users} users, {a.items} items, {a.clusters} clusters "
        f"(in-interest share {stats['cluster_match_rate']:.2f}, {stats['redrawn']} repeats re-drawn, "
        f"{stats['dropped']} dropped, {time.time() - t0:.1f}s)"
    )
    write_dataset(
        Path(a.out),
        name=Path(a.out).name,
        source="synthetic",
        interactions=inter,
        items=items,
        params={
            "generator": GENERATOR,
            "users": a.users,
            "items": a.items,
            "events": a.events,
            "clusters": a.clusters,
            "seed": a.seed,
        },
    )
    log(f"total {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
