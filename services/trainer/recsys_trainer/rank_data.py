"""Training samples for the prerank and rank models (docs/ranking.md): the funnel's job.

The later stages order what recall hands over, so that what the user engages with
next comes first. Their samples are exactly that:
- Sample moments: for every user, the `contexts` events before the user's last
  one (the last is held out for `npm run eval:funnel` and is never read).
- Candidates: the served recall stage replayed at each moment over gRPC
  (services/gateway/src/eval/replay-cli.ts): its code, models and the funnel's
  quotas, with the user's history strictly before the moment. Its output file is
  read here (`read_replay`).
- Labels: the event at the moment is the positive (`click` = 1, `like` = 1 when
  the rating is >= 4); `negatives` candidates drawn from the replayed set are the
  negatives (`click` = `like` = 0). A candidate the user rated at any time is not
  a negative (the recall models saw most of the data, so such items are likely
  engagements; as negatives they would be label noise). Only sample selection
  looks at the future, never a feature.
- Split by moment, per user: the latest moment tests, the one before validates
  (early stopping), the rest train. Items and users with no event outside the
  held-out ones are out of the vocabularies (cold, OOV index 1).
- No leakage: a sample's features (its user history) use only the user's events
  with a timestamp strictly before the sample's; `check_no_leakage` verifies it
  for every context and the pipeline refuses to train otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import FIRST_ITEM_IDX, OOV_IDX, PAD_IDX, Dataset

DAY = 86_400


@dataclass
class ContentTable:
    """Content vectors (the `content` model) in dataset-vocabulary order; zeros where missing."""
    vectors: np.ndarray   # [vocab_size, C] float32
    has: np.ndarray       # [vocab_size] float32 (1 = known)
    version: str
    encoder_sha: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def load_content(store: str | Path, ds: Dataset) -> ContentTable:
    import json

    store = Path(store)
    cur = store / "content" / "CURRENT"
    if not cur.exists():
        raise FileNotFoundError(f"{cur} not found: run scripts/content-embeddings.sh first")
    version = cur.read_text().strip()
    vdir = store / "content" / version
    manifest = json.loads((vdir / "manifest.json").read_text())
    dim, count = int(manifest["dim"]), int(manifest["count"])
    raw = np.fromfile(vdir / "content.f32", dtype="<f4").reshape(count, dim)
    lines = (vdir / "item_ids.tsv").read_text().split("\n")[1:]
    index_of = {item: i + FIRST_ITEM_IDX for i, item in enumerate(ds.item_ids)}
    vectors = np.zeros((ds.vocab_size, dim), np.float32)
    has = np.zeros(ds.vocab_size, np.float32)
    for line in lines:
        if not line:
            continue
        row, item = line.split("\t")
        v = index_of.get(item)
        if v is not None:
            vectors[v] = raw[int(row)]
            has[v] = 1.0
    sha = str(manifest.get("encoder", {}).get("onnx_sha256", ""))
    return ContentTable(vectors, has, version, sha)


@dataclass
class Vocab:
    """The models' vocabularies: dataset index -> model index (1 = OOV / cold)."""
    item_map: np.ndarray     # [ds.vocab_size] int64
    item_ids: list[str]      # model index i >= 2 -> item id
    user_map: np.ndarray     # [num_users] int64
    user_ids: list[str]
    genre_names: list[str]   # genre index g >= 1 -> name (same as the dataset's)

    @property
    def num_items(self) -> int:
        return len(self.item_ids) + FIRST_ITEM_IDX

    @property
    def num_users(self) -> int:
        return len(self.user_ids) + FIRST_ITEM_IDX

    def tsv(self, kind: str) -> str:
        """item_vocab.tsv / user_vocab.tsv / genre_vocab.tsv (docs/ranking.md)."""
        if kind == "genre":
            header, names, first = "index\tgenre", self.genre_names, 1
        else:
            header, names, first = f"index\t{kind}_id", {"item": self.item_ids, "user": self.user_ids}[kind], 2
        return header + "\n" + "".join(f"{i + first}\t{n}\n" for i, n in enumerate(names))


def held_out_mask(ds: Dataset) -> np.ndarray:
    """[num_interactions] True for each user's last event: what `npm run eval:funnel` holds out
    (the canonical order is by user, then time, as the services' per-user split reads it)."""
    last = np.zeros(ds.num_interactions, bool)
    lengths = ds.lengths()
    last[(ds.offsets[1:] - 1)[lengths >= 2]] = True
    return last


def build_vocab(ds: Dataset, known: np.ndarray) -> Vocab:
    """Vocabularies of the items and users of the events where `known` is True."""
    warm_items = np.unique(ds.items[known])
    warm_items = warm_items[warm_items >= FIRST_ITEM_IDX]
    item_map = np.full(ds.vocab_size, OOV_IDX, np.int64)
    item_map[PAD_IDX] = PAD_IDX
    item_map[warm_items] = np.arange(len(warm_items)) + FIRST_ITEM_IDX
    item_ids = [ds.item_ids[i - FIRST_ITEM_IDX] for i in warm_items]
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    warm_users = np.unique(user_of[known])
    user_map = np.full(ds.num_users, OOV_IDX, np.int64)
    user_map[warm_users] = np.arange(len(warm_users)) + FIRST_ITEM_IDX
    user_ids = [ds.user_ids[u] for u in warm_users]
    return Vocab(item_map, item_ids, user_map, user_ids, list(ds.genre_names))


@dataclass
class Samples:
    """Samples grouped by context: context k = (user, time) of one positive event; its
    history is the user's last L events strictly before that time."""
    ctx_user: np.ndarray        # [K] dataset user index
    ctx_ts: np.ndarray          # [K] unix seconds
    ctx_hist: np.ndarray        # [K, L] dataset item index, left-padded with 0
    ctx_hist_ts: np.ndarray     # [K, L] timestamps of the history events (0 = padding)
    ctx_part: np.ndarray        # [K] 0 train, 1 val, 2 test
    s_ctx: np.ndarray           # [S] context of each sample
    s_item: np.ndarray          # [S] dataset item index
    s_click: np.ndarray         # [S] float32
    s_like: np.ndarray          # [S] float32
    s_kind: np.ndarray          # [S] 0 positive, 1 negative (a replayed recall candidate)
    ctx_replay: np.ndarray | None = None   # [K] the replay moment of each context (build_samples)
    s_recall: np.ndarray | None = None     # [S, R] float32 cand_recall row of each sample (None: zeros)

    def part_mask(self, part: int) -> np.ndarray:
        return self.ctx_part[self.s_ctx] == part

    def counts(self) -> dict:
        out = {}
        for p, name in enumerate(("train", "val", "test")):
            m = self.part_mask(p)
            out[name] = {"samples": int(m.sum()), "positives": int((m & (self.s_kind == 0)).sum()),
                         "contexts": int((self.ctx_part == p).sum())}
        return out


def _history_index(ds: Dataset, users: np.ndarray, ts: np.ndarray, L: int):
    """Global event indices of the last L events of each user strictly before each time,
    left-padded: (index [K, L], valid [K, L])."""
    ends = np.empty(len(users), np.int64)
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        s, e = ds.offsets[u], ds.offsets[u + 1]
        ends[rows] = s + np.searchsorted(ds.timestamps[s:e], ts[rows], side="left")
    idx = ends[:, None] - L + np.arange(L)[None, :]
    valid = idx >= ds.offsets[users][:, None]
    return np.where(valid, idx, 0), valid


def history_windows(ds: Dataset, users: np.ndarray, ts: np.ndarray, L: int):
    """Last L events of each user strictly before each time: (items, timestamps, rating buckets),
    each [K, L], left-padded with 0."""
    idx, valid = _history_index(ds, users, ts, L)
    return (np.where(valid, ds.items[idx], PAD_IDX), np.where(valid, ds.timestamps[idx], 0),
            np.where(valid, ds.ratings[idx], 0).astype(np.int64))


def check_no_leakage(samples: Samples) -> int:
    """Every history event of every context is strictly older than the context. Returns the
    number of history events checked; raises AssertionError otherwise."""
    present = samples.ctx_hist != PAD_IDX
    bad = present & (samples.ctx_hist_ts >= samples.ctx_ts[:, None])
    if bad.any():
        k = int(np.flatnonzero(bad.any(1))[0])
        raise AssertionError(f"context {k}: history event at or after the sample time {samples.ctx_ts[k]}")
    return int(present.sum())


@dataclass
class Replay:
    """The served recall replayed at past moments (replay-cli.ts output), in dataset index space."""
    channels: list[str]
    header: dict
    ctx_user: np.ndarray      # [K] dataset user index
    ctx_ts: np.ndarray        # [K] unix seconds
    ctx_item: np.ndarray      # [K] dataset item index of the event at the moment (the positive)
    ctx_rating: np.ndarray    # [K] float rating of that event
    offsets: np.ndarray       # [K + 1] candidates of moment k: cand_*[offsets[k]:offsets[k + 1]]
    cand_item: np.ndarray     # [T] dataset item index (recall's order), 0 for an item the dataset lacks
    cand_mask: np.ndarray     # [T] channel bits (bit i = channels[i])
    cand_score: np.ndarray    # [T] recall score (what prerank and rank read as recall_score)

    def candidates(self, k: int) -> np.ndarray:
        return self.cand_item[self.offsets[k]:self.offsets[k + 1]]

    @property
    def recall_features(self) -> list[str]:
        """Names of the `cand_recall` columns: the recall score, then one 0/1 column per channel."""
        return ["recall_score", *(f"channel:{c}" for c in sorted(self.channels))]

    def recall_rows(self, k: int) -> np.ndarray:
        """[n, R] float32 `cand_recall` rows of moment k's candidates (columns: recall_features)."""
        a, b = self.offsets[k], self.offsets[k + 1]
        out = np.zeros((b - a, 1 + len(self.channels)), np.float32)
        out[:, 0] = self.cand_score[a:b]
        for col, c in enumerate(sorted(self.channels), start=1):
            out[:, col] = (self.cand_mask[a:b] >> self.channels.index(c)) & 1
        return out


def read_replay(path: str | Path, ds: Dataset) -> Replay:
    import json

    item_index = {item: i + FIRST_ITEM_IDX for i, item in enumerate(ds.item_ids)}
    user_index = {u: i for i, u in enumerate(ds.user_ids)}
    with open(path) as f:
        header = json.loads(f.readline())
        users, ts, items, ratings, offsets, cands, masks, scores = [], [], [], [], [0], [], [], []
        for n, line in enumerate(f, start=2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 7:
                raise ValueError(f"{path}:{n}: expected 7 tab-separated fields, got {len(parts)}")
            user, t_ms, item, rating, ids, bits, recall_scores = parts
            if user not in user_index or item not in item_index:
                raise ValueError(f"{path}:{n}: user {user} or item {item} is not in the dataset")
            users.append(user_index[user])
            ts.append(int(t_ms) // 1000)
            items.append(item_index[item])
            ratings.append(float(rating))
            ids = ids.split(",") if ids else []
            cands.extend(item_index.get(i, PAD_IDX) for i in ids)
            masks.extend(int(b) for b in bits.split(",")) if bits else None
            scores.extend(float(x) for x in recall_scores.split(",")) if recall_scores else None
            offsets.append(len(cands))
            if not len(masks) == len(scores) == len(cands):
                raise ValueError(f"{path}:{n}: {len(ids)} candidates, but not as many channel masks and scores")
    order = np.lexsort((np.asarray(ts), np.asarray(users)))   # by user, then time
    off = np.asarray(offsets, np.int64)
    cand_item, cand_mask = np.asarray(cands, np.int64), np.asarray(masks, np.int64)
    cand_score = np.asarray(scores, np.float32)
    pieces = [np.r_[off[k]:off[k + 1]] for k in order]
    perm = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    new_off = np.r_[0, np.cumsum([len(p) for p in pieces])].astype(np.int64)
    return Replay(list(header.get("channels", [])), header, np.asarray(users, np.int64)[order],
                  np.asarray(ts, np.int64)[order], np.asarray(items, np.int64)[order],
                  np.asarray(ratings, np.float64)[order], new_off, cand_item[perm], cand_mask[perm],
                  cand_score[perm])


@dataclass
class SampleConfig:
    max_hist_len: int = 50
    negatives: int = 64           # drawn from each moment's replayed candidates
    max_users: int = 0            # 0 = all (quick profile: a subset)


def build_samples(ds: Dataset, replay: Replay, cfg: SampleConfig, seed: int = 0, log=print) -> Samples:
    """One context per replayed moment whose positive recall handed over (the later stages can only
    order what they receive): the positive and `negatives` other candidates of its recall set, each
    with its `cand_recall` row (recall score, channels) as serving sees it."""
    g = np.random.default_rng(seed)
    K = len(replay.ctx_user)
    keep = np.ones(K, bool)
    if cfg.max_users:
        users = np.unique(replay.ctx_user)
        if cfg.max_users < len(users):
            keep = np.isin(replay.ctx_user, np.sort(g.choice(users, cfg.max_users, replace=False)))
    recalled = np.array([bool((replay.candidates(k) == replay.ctx_item[k]).any()) for k in range(K)], bool)
    rows = np.flatnonzero(keep & recalled)
    ctx_user, ctx_ts = replay.ctx_user[rows], replay.ctx_ts[rows]
    # part by moment within the user: latest tests, the one before validates, the rest train
    from_end = np.zeros(len(rows), np.int64)
    for i in range(len(rows) - 2, -1, -1):
        from_end[i] = from_end[i + 1] + 1 if ctx_user[i] == ctx_user[i + 1] else 0
    part = np.where(from_end == 0, 2, np.where(from_end == 1, 1, 0))
    hist, hist_ts, _ = history_windows(ds, ctx_user, ctx_ts, cfg.max_hist_len)

    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    rated = set((user_of.astype(np.int64) * ds.vocab_size + ds.items).tolist())
    like_at = 4.0
    s_ctx, s_item, s_kind, s_click, s_like, s_recall = [], [], [], [], [], []
    for c, k in enumerate(rows):
        u = int(replay.ctx_user[k])
        cands = replay.candidates(k)
        feats = replay.recall_rows(k)
        at = int(np.flatnonzero(cands == replay.ctx_item[k])[0])
        s_ctx.append(c)
        s_item.append(int(cands[at]))
        s_kind.append(0)
        s_click.append(1.0)
        s_like.append(1.0 if replay.ctx_rating[k] >= like_at else 0.0)
        s_recall.append(feats[at:at + 1])
        ok = np.flatnonzero([int(i) >= FIRST_ITEM_IDX and u * ds.vocab_size + int(i) not in rated for i in cands])
        if len(ok) == 0 or not cfg.negatives:
            continue
        pick = ok if len(ok) <= cfg.negatives else np.sort(g.choice(ok, cfg.negatives, replace=False))
        s_ctx.extend([c] * len(pick))
        s_item.extend(int(i) for i in cands[pick])
        s_kind.extend([1] * len(pick))
        s_click.extend([0.0] * len(pick))
        s_like.extend([0.0] * len(pick))
        s_recall.append(feats[pick])
    log(f"[rank-samples] {len(rows)} replayed moments of {len(np.unique(ctx_user))} users whose positive was "
        f"recalled (of {int(keep.sum())}), {len(s_item)} samples ({cfg.negatives} recall negatives per moment)")
    R = 1 + len(replay.channels)
    return Samples(ctx_user, ctx_ts, hist, hist_ts, part, np.asarray(s_ctx, np.int64), np.asarray(s_item, np.int64),
                   np.asarray(s_click, np.float32), np.asarray(s_like, np.float32), np.asarray(s_kind, np.int64),
                   rows, np.concatenate(s_recall) if s_recall else np.zeros((0, R), np.float32))
