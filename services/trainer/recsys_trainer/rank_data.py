"""Training samples for the prerank and rank models (docs/ranking.md).

What is real and what is simulated:
- Every MovieLens rating is a real interaction and becomes a positive exposure:
  `click` = 1, `like` = 1 when the rating is >= 4.
- MovieLens has no impression log, so the negatives (shown, not engaged) are
  simulated, per positive event of user u at time t:
  * `recall_negatives` items the funnel's main recall channel would have shown:
    the published KuaiFormer encoder (ONNX, the serving artefact) replayed on
    u's history before t, top `recall_depth` unseen items;
  * `popular_negatives` items drawn by training-period popularity;
  * `fresh_negatives` items that were new at t (first rated in the `fresh_days`
    before t), as the `fresh` channel would show; these give cold items negatives.
- A candidate negative the user rated at any time is dropped (not a negative).
- Split: global temporal. Events before the `val_quantile` timestamp train,
  [val, test) validate, after the `test_quantile` timestamp test. Items and users
  with no training-period event are out of the models' vocabularies (cold).
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
class TemporalSplit:
    t_val: int
    t_test: int

    def part(self, ts: np.ndarray) -> np.ndarray:
        """0 train, 1 validation, 2 test."""
        return np.where(ts < self.t_val, 0, np.where(ts < self.t_test, 1, 2))


def temporal_split(ds: Dataset, val_quantile: float, test_quantile: float) -> TemporalSplit:
    q = np.quantile(ds.timestamps, [val_quantile, test_quantile])
    return TemporalSplit(int(q[0]), int(q[1]))


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


def build_vocab(ds: Dataset, split: TemporalSplit) -> Vocab:
    train = ds.timestamps < split.t_val
    warm_items = np.unique(ds.items[train])
    warm_items = warm_items[warm_items >= FIRST_ITEM_IDX]
    item_map = np.full(ds.vocab_size, OOV_IDX, np.int64)
    item_map[PAD_IDX] = PAD_IDX
    item_map[warm_items] = np.arange(len(warm_items)) + FIRST_ITEM_IDX
    item_ids = [ds.item_ids[i - FIRST_ITEM_IDX] for i in warm_items]
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    warm_users = np.unique(user_of[train])
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
    s_kind: np.ndarray          # [S] 0 positive, 1 recall negative, 2 popular negative, 3 fresh negative

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


class RecallReplay:
    """The serving KuaiFormer recall replayed offline: the published user encoder (ONNX) on a
    history window, max-over-interests inner product against the item table, top `depth`."""

    def __init__(self, store: str | Path, ds: Dataset, model: str = "kuaiformer"):
        import json

        import onnxruntime as ort

        store = Path(store)
        cur = store / model / "CURRENT"
        if not cur.exists():
            raise FileNotFoundError(f"{cur} not found: train the recall models first (scripts/train.sh)")
        self.version = cur.read_text().strip()
        vdir = store / model / self.version
        m = json.loads((vdir / "manifest.json").read_text())
        self.L, self.D, N = int(m["max_seq_len"]), int(m["embedding_dim"]), int(m["vocab_size"])
        table = np.fromfile(vdir / "item_embeddings.f32", dtype="<f4").reshape(N, self.D)
        vocab = {}
        for line in (vdir / "item_vocab.tsv").read_text().split("\n")[1:]:
            if line:
                i, item = line.split("\t")
                vocab[item] = int(i)
        # model index of every dataset index (OOV when the recall model does not know the item)
        self.to_model = np.full(ds.vocab_size, OOV_IDX, np.int64)
        self.to_model[PAD_IDX] = PAD_IDX
        self.table = np.zeros((ds.vocab_size, self.D), np.float32)  # in dataset index space
        for k, item in enumerate(ds.item_ids):
            mi = vocab.get(item)
            if mi is not None:
                self.to_model[k + FIRST_ITEM_IDX] = mi
                self.table[k + FIRST_ITEM_IDX] = table[mi]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.sess = ort.InferenceSession(str(vdir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.ds = ds

    def top(self, hist_items: np.ndarray, hist_ts: np.ndarray, ratings: np.ndarray, depth: int,
            batch: int = 256) -> np.ndarray:
        """hist_* are [B, Lh] left-padded windows in dataset index space; returns [B, depth] dataset
        indices (history items excluded)."""
        from .buckets import gap_buckets_from_gaps, GAP_FIRST, PAD

        out = np.zeros((len(hist_items), depth), np.int64)
        for s in range(0, len(hist_items), batch):
            h = hist_items[s:s + batch][:, -self.L:]
            t = hist_ts[s:s + batch][:, -self.L:]
            r = ratings[s:s + batch][:, -self.L:]
            if h.shape[1] < self.L:
                pad = self.L - h.shape[1]
                h, t, r = (np.pad(a, ((0, 0), (pad, 0))) for a in (h, t, r))
            valid = h != PAD_IDX
            prev_valid = np.zeros_like(valid)
            prev_valid[:, 1:] = valid[:, :-1]
            gaps = t - np.concatenate([t[:, :1], t[:, :-1]], axis=1)
            gap_b = np.where(prev_valid, gap_buckets_from_gaps(gaps), GAP_FIRST)
            gap_b = np.where(valid, gap_b, PAD)
            feeds = {"item_idx": self.to_model[h], "rating_bucket": np.where(valid, r, PAD).astype(np.int64),
                     "gap_bucket": gap_b.astype(np.int64)}
            interests = self.sess.run(["interests"], feeds)[0]          # [b, K, D]
            scores = np.einsum("bkd,nd->bkn", interests, self.table).max(1)  # [b, N]
            scores[:, :FIRST_ITEM_IDX] = -np.inf
            np.put_along_axis(scores, hist_items[s:s + batch], -np.inf, axis=1)
            part = np.argpartition(-scores, depth, axis=1)[:, :depth]
            order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
            out[s:s + batch] = np.take_along_axis(part, order, 1)
        return out


@dataclass
class SampleConfig:
    max_hist_len: int = 50
    val_quantile: float = 0.8
    test_quantile: float = 0.9
    recall_negatives: int = 2
    recall_depth: int = 100
    recall_every: int = 10        # the recall is replayed once per this many events of a user
    popular_negatives: int = 2
    popular_alpha: float = 0.75
    fresh_negatives: int = 1
    fresh_days: int = 365
    max_users: int = 0            # 0 = all (quick profile: a subset)


def build_samples(ds: Dataset, split: TemporalSplit, replay: RecallReplay, cfg: SampleConfig,
                  seed: int = 0, log=print) -> Samples:
    g = np.random.default_rng(seed)
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    users = np.arange(ds.num_users)
    if cfg.max_users and cfg.max_users < ds.num_users:
        users = np.sort(g.choice(users, cfg.max_users, replace=False))
    keep = np.isin(user_of, users)
    pos = np.flatnonzero(keep)                                   # one context per positive event
    ctx_user, ctx_ts = user_of[pos], ds.timestamps[pos]
    L = cfg.max_hist_len
    hist, hist_ts, _ = history_windows(ds, ctx_user, ctx_ts, L)
    part = split.part(ctx_ts)
    # the recall encoder's window (its own length, with rating buckets as side input)
    r_items, r_ts, r_ratings = history_windows(ds, ctx_user, ctx_ts, replay.L)

    # 1. recall replay, once per `recall_every` events of a user (history as of that event)
    first_of_user = np.r_[True, ctx_user[1:] != ctx_user[:-1]]
    rank_in_user = np.arange(len(pos)) - np.maximum.accumulate(np.where(first_of_user, np.arange(len(pos)), 0))
    anchor = (rank_in_user % cfg.recall_every) == 0
    anchor_rows = np.flatnonzero(anchor)
    log(f"[rank-samples] replaying recall {replay.version} at {len(anchor_rows)} points "
        f"for {len(pos)} positives of {len(users)} users")
    recalled = replay.top(r_items[anchor_rows], r_ts[anchor_rows], r_ratings[anchor_rows], cfg.recall_depth)
    anchor_of = np.maximum.accumulate(np.where(anchor, np.arange(len(pos)), 0))
    slot_of_anchor = np.full(len(pos), -1, np.int64)
    slot_of_anchor[anchor_rows] = np.arange(len(anchor_rows))
    rec = recalled[slot_of_anchor[anchor_of]]                  # [K, depth]; anchor is at or before the row

    # 2. popularity sampling distribution: training-period counts
    train = ds.timestamps < split.t_val
    counts = np.bincount(ds.items[train], minlength=ds.vocab_size).astype(np.float64)
    counts[:FIRST_ITEM_IDX] = 0
    p_pop = counts ** cfg.popular_alpha
    p_pop /= p_pop.sum()
    # 3. first-rating time of every item (its "release" into the catalogue, for fresh negatives)
    first_ts = np.full(ds.vocab_size, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first_ts, ds.items, ds.timestamps)
    by_first = np.argsort(first_ts, kind="stable")
    sorted_first = first_ts[by_first]

    K = len(pos)
    s_ctx, s_item, s_kind = [np.arange(K)], [ds.items[pos]], [np.zeros(K, np.int64)]
    s_click, s_like = [np.ones(K, np.float32)], [(ds.ratings[pos] >= _rating_bucket_of(4.0)).astype(np.float32)]

    def add(ctx, items, kind):
        s_ctx.append(ctx)
        s_item.append(items)
        s_kind.append(np.full(len(ctx), kind, np.int64))
        s_click.append(np.zeros(len(ctx), np.float32))
        s_like.append(np.zeros(len(ctx), np.float32))

    if cfg.recall_negatives:
        cols = g.integers(0, cfg.recall_depth, size=(K, cfg.recall_negatives))
        items = np.take_along_axis(rec, cols, 1)
        add(np.repeat(np.arange(K), cfg.recall_negatives), items.ravel(), 1)
    if cfg.popular_negatives:
        items = g.choice(ds.vocab_size, size=K * cfg.popular_negatives, p=p_pop)
        add(np.repeat(np.arange(K), cfg.popular_negatives), items, 2)
    if cfg.fresh_negatives:
        lo = np.searchsorted(sorted_first, ctx_ts - cfg.fresh_days * DAY, side="left")
        hi = np.searchsorted(sorted_first, ctx_ts, side="left")
        ok = hi > lo
        rows = np.repeat(np.flatnonzero(ok), cfg.fresh_negatives)
        pick = lo[rows] + (g.random(len(rows)) * (hi[rows] - lo[rows])).astype(np.int64)
        add(rows, by_first[pick], 3)

    s = Samples(ctx_user, ctx_ts, hist, hist_ts, part, np.concatenate(s_ctx), np.concatenate(s_item),
                np.concatenate(s_click), np.concatenate(s_like), np.concatenate(s_kind))
    # A negative the user interacted with at any time (before t, at t, or later) is not a negative:
    # drop it. (The replayed recall model saw most of the data, so its top items for a user are often
    # ones the user rates later; as negatives they would be label noise. Only sample selection looks
    # at the future here, never a feature.)
    user_items = ds.items.astype(np.int64) + user_of.astype(np.int64) * ds.vocab_size
    key = s.s_item + s.ctx_user[s.s_ctx] * ds.vocab_size
    own = (s.s_kind > 0) & (np.isin(key, user_items) | (s.s_item < FIRST_ITEM_IDX))
    if own.any():
        k = ~own
        s = Samples(s.ctx_user, s.ctx_ts, s.ctx_hist, s.ctx_hist_ts, s.ctx_part, s.s_ctx[k], s.s_item[k],
                    s.s_click[k], s.s_like[k], s.s_kind[k])
    return s


def _rating_bucket_of(r: float) -> int:
    from .buckets import rating_buckets

    return int(rating_buckets(np.array([r]))[0])
