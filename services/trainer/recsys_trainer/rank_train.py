"""Train, evaluate, export and publish the prerank and EM3 rank models (docs/ranking.md).

    python -m recsys_trainer rank --profile quick|default|full --replay FILE [--data DIR] [--store DIR]
                                  [--docs docs/evaluation.md]

One run: samples from the replayed recall sets (rank_data) -> ablations of the rank
model (ID-only, content-only, ID+content, ID+content without CIC) -> the two-tower
prerank -> AUC/GAUC per task on the test moments, cold items separately -> HR/NDCG@10
of the positive in each test moment's whole recall set, ordered by recall, prerank,
rank and prerank-then-rank -> ONNX export + parity -> publish `em3` and `prerank`.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import store
from .config import CONFIG_DIR
from .data import FIRST_ITEM_IDX, NUM_YEAR_BUCKETS, OOV_IDX, YEAR_MAX, YEAR_MIN, Dataset, load_dataset
from .rank_data import (ContentTable, Replay, SampleConfig, Samples, Vocab, build_samples, build_vocab,
                        check_no_leakage, held_out_mask, load_content, read_replay)
from .rank_model import (EM3ItemGraph, EM3Rank, EM3ScoreGraph, PrerankItemGraph, PrerankScoreGraph, RankModelConfig,
                         TwoTowerPrerank)

PARITY_TOLERANCE = 1e-4
OPSET = 18
EM3_INPUTS = ["user_idx", "hist_item_idx", "hist_genres", "hist_year", "hist_content", "cand_item_idx",
              "cand_genres", "cand_year", "cand_content", "cand_has_content", "cand_recall"]
PRERANK_INPUTS = ["user_idx", "hist_item_idx", "cand_item_idx", "cand_genres", "cand_year", "cand_content",
                  "cand_has_content", "cand_recall"]
# Prerank serves as two graphs: `item.onnx` (the item tower, run once per item and model version) and
# `model.onnx` (the user tower and the score, per request, over the precomputed item vectors).
PRERANK_ITEM_INPUTS = ["cand_item_idx", "cand_genres", "cand_year", "cand_content", "cand_has_content"]
PRERANK_SCORE_INPUTS = ["user_idx", "hist_item_idx", "cand_item_vec", "cand_recall"]
# EM3 serves as two graphs too: `item.onnx` is the content embedding (Fusion-Q-Former over the item's text
# vector and metadata), per item; `model.onnx` takes it for the history and the candidates.
EM3_ITEM_INPUTS = ["cand_genres", "cand_year", "cand_content", "cand_has_content"]
EM3_SCORE_INPUTS = ["user_idx", "hist_item_idx", "hist_item_vec", "cand_item_idx", "cand_genres", "cand_year",
                    "cand_item_vec", "cand_recall"]
MODES = {  # ablation name -> (use_id, use_content, cic)
    "id": (True, False, False),
    "content": (False, True, False),
    "id+content": (True, True, True),
    "id+content-nocic": (True, True, False),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class RankTrainConfig:
    epochs: int = 3
    batch_contexts: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    cic_weight: float = 0.1
    cic_temperature: float = 0.1
    oov_dropout: float = 0.1       # train the OOV item/user rows: replace ids by OOV with this probability
    like_weight: float = 1.0
    listwise_weight: float = 1.0   # softmax cross-entropy of the positive over its moment's candidates
    time_budget_s: float = 0       # per model; 0 = none


@dataclass
class RankRunConfig:
    profile: str
    seed: int = 42
    threads: int = 2
    serve_mode: str = "id+content"
    ablations: list = field(default_factory=lambda: list(MODES))
    samples: SampleConfig = field(default_factory=SampleConfig)
    model: dict = field(default_factory=dict)
    prerank_model: dict = field(default_factory=dict)
    train: RankTrainConfig = field(default_factory=RankTrainConfig)
    prerank_train: RankTrainConfig = field(default_factory=RankTrainConfig)
    prerank_keep: int = 300        # what the funnel keeps after prerank (gateway funnel.ts)
    fusion: dict = field(default_factory=lambda: {"click": 1.0, "like": 0.0})  # the funnel's rerank weights


def load_rank_config(profile: str, path: str | Path | None = None) -> RankRunConfig:
    path = Path(path) if path else CONFIG_DIR / f"rank.{profile}.json"
    raw = json.loads(path.read_text())
    return RankRunConfig(
        profile=raw.get("profile", profile), seed=raw.get("seed", 42), threads=raw.get("threads", 2),
        serve_mode=raw.get("serve_mode", "id+content"), ablations=raw.get("ablations", list(MODES)),
        samples=SampleConfig(**raw.get("samples", {})), model=raw.get("model", {}),
        prerank_model=raw.get("prerank_model", {}), train=RankTrainConfig(**raw.get("train", {})),
        prerank_train=RankTrainConfig(**raw.get("prerank_train", {})),
        prerank_keep=raw.get("prerank_keep", 300), fusion=raw.get("fusion", {"click": 1.0, "like": 0.0}))


# ---- metrics ------------------------------------------------------------------------------------

def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC with tied scores counted half (rank statistic); NaN when one class is missing."""
    labels = np.asarray(labels) > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0          # 1-based average rank of each distinct score
    ranks = avg_rank[inv]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Per-user AUC averaged with weights = the user's sample count, over users with both classes."""
    order = np.argsort(groups, kind="stable")
    g, l, s = groups[order], labels[order], scores[order]
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    total, weight = 0.0, 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        v = auc(l[a:b], s[a:b])
        if v == v:
            total += v * (b - a)
            weight += b - a
    return total / weight if weight else float("nan")


def ndcg_at(ranked_relevance: np.ndarray, n_relevant: int, k: int = 10) -> float:
    gains = ranked_relevance[:k] / np.log2(np.arange(2, min(k, len(ranked_relevance)) + 2))
    ideal = (1.0 / np.log2(np.arange(2, min(k, n_relevant) + 2))).sum()
    return float(gains.sum() / ideal) if ideal > 0 else 0.0


# ---- tensors --------------------------------------------------------------------------------------

class Features:
    """Builds model inputs from dataset indices (the same tables the services build them from)."""

    def __init__(self, ds: Dataset, vocab: Vocab, content: ContentTable, recall_dim: int):
        self.ds, self.vocab, self.content, self.recall_dim = ds, vocab, content, recall_dim
        self.genres = torch.from_numpy(ds.item_genres)
        self.years = torch.from_numpy(ds.item_years)
        self.vectors = torch.from_numpy(content.vectors)
        self.has = torch.from_numpy(content.has)
        self.item_map = torch.from_numpy(vocab.item_map)
        self.user_map = torch.from_numpy(vocab.user_map)

    def batch(self, s: Samples, ctx_rows: np.ndarray, sample_rows: np.ndarray, g: np.random.Generator | None,
              oov_dropout: float = 0.0) -> dict:
        """User side for ctx_rows, candidates for sample_rows (whose contexts are among ctx_rows)."""
        local = np.full(len(s.ctx_user), -1, np.int64)
        local[ctx_rows] = np.arange(len(ctx_rows))
        hist = torch.from_numpy(s.ctx_hist[ctx_rows])
        items = torch.from_numpy(s.s_item[sample_rows])
        user = self.user_map[torch.from_numpy(s.ctx_user[ctx_rows])]
        hist_idx = self.item_map[hist]
        cand_idx = self.item_map[items]
        if g is not None and oov_dropout > 0:
            user = torch.where(torch.from_numpy(g.random(len(user)) < oov_dropout), OOV_IDX, user)
            cand_idx = torch.where(torch.from_numpy(g.random(len(cand_idx)) < oov_dropout), OOV_IDX, cand_idx)
            drop = torch.from_numpy(g.random(hist_idx.shape) < oov_dropout) & (hist_idx > 0)
            hist_idx = torch.where(drop, OOV_IDX, hist_idx)
        uq, inverse = torch.unique(hist, return_inverse=True)
        return {
            "hist_unique": (self.vectors[uq], self.has[uq], self.genres[uq], self.years[uq], inverse),
            "user_idx": user, "hist_item_idx": hist_idx, "hist_genres": self.genres[hist],
            "hist_year": self.years[hist], "hist_content": self.vectors[hist],
            "cand_item_idx": cand_idx, "cand_genres": self.genres[items], "cand_year": self.years[items],
            "cand_content": self.vectors[items], "cand_has_content": self.has[items],
            "cand_recall": (torch.from_numpy(s.s_recall[sample_rows]) if s.s_recall is not None
                            else torch.zeros(len(sample_rows), self.recall_dim)),
            "ctx": torch.from_numpy(local[s.s_ctx[sample_rows]]),
        }


def _context_batches(s: Samples, part: int, batch_contexts: int, g: np.random.Generator | None):
    """(ctx_rows, sample_rows) batches over the samples of one split part."""
    rows = np.flatnonzero(s.part_mask(part))
    ctxs = np.unique(s.s_ctx[rows])
    if g is not None:
        ctxs = g.permutation(ctxs)
    by_ctx = np.argsort(s.s_ctx[rows], kind="stable")
    sorted_ctx = s.s_ctx[rows][by_ctx]
    for a in range(0, len(ctxs), batch_contexts):
        c = np.sort(ctxs[a:a + batch_contexts])
        lo = np.searchsorted(sorted_ctx, c, "left")
        hi = np.searchsorted(sorted_ctx, c, "right")
        sel = np.concatenate([rows[by_ctx[x:y]] for x, y in zip(lo, hi)])
        yield c, sel


def _em3_args(b: dict):
    return [b[n] for n in EM3_INPUTS]


def _prerank_args(b: dict):
    return [b[n] for n in PRERANK_INPUTS]


@torch.no_grad()
def predict(model, feats: Features, s: Samples, part: int, batch_contexts: int = 512):
    """Scores of every sample of a part, in sample order: (rows, click, like or None)."""
    model.eval()
    out_rows, out_click, out_like = [], [], []
    for c, sel in _context_batches(s, part, batch_contexts, None):
        b = feats.batch(s, c, sel, None)
        if isinstance(model, EM3Rank):
            click, like, _, _ = model.logits(*_em3_args(b), ctx=b["ctx"], hist_unique=b["hist_unique"])
            out_like.append(like.numpy())
        else:
            click = model(*_prerank_args(b), ctx=b["ctx"])
        out_rows.append(sel)
        out_click.append(click.numpy())
    rows = np.concatenate(out_rows)
    return rows, np.concatenate(out_click), (np.concatenate(out_like) if out_like else None)


def evaluate(model, feats: Features, s: Samples, part: int, vocab: Vocab) -> dict:
    """AUC and GAUC per task, also on the samples whose item is cold (not in the item vocabulary).
    `model` may be a function (samples rows -> scores) for baselines."""
    if callable(model) and not isinstance(model, torch.nn.Module):
        rows = np.flatnonzero(s.part_mask(part))
        click = like = model(rows)
    else:
        rows, click, like = predict(model, feats, s, part)
    users = s.ctx_user[s.s_ctx[rows]]
    cold = vocab.item_map[s.s_item[rows]] == OOV_IDX
    out = {"samples": int(len(rows)), "cold_samples": int(cold.sum()),
           "cold_positives": int((cold & (s.s_click[rows] > 0)).sum())}
    for task, scores in (("click", click), ("like", like)):
        if scores is None:
            continue
        y = (s.s_click if task == "click" else s.s_like)[rows]
        out[f"{task}_auc"] = auc(y, scores)
        out[f"{task}_gauc"] = gauc(y, scores, users)
        out[f"{task}_cold_auc"] = auc(y[cold], scores[cold])
    return out


# ---- training ---------------------------------------------------------------------------------------

def listwise_loss(logits: torch.Tensor, positive: torch.Tensor, ctx: torch.Tensor, n_ctx: int) -> torch.Tensor:
    """Mean over contexts with a positive of -log softmax(positive logit) among the context's samples."""
    top = torch.full((n_ctx,), -1e9).scatter_reduce(0, ctx, logits.detach(), reduce="amax")
    lse = torch.log(torch.zeros(n_ctx).index_add(0, ctx, torch.exp(logits - top[ctx]))) + top
    pos = positive > 0.5
    if not bool(pos.any()):
        return logits.sum() * 0.0
    return (lse[ctx[pos]] - logits[pos]).mean()


def train_model(model, feats: Features, s: Samples, tc: RankTrainConfig, vocab: Vocab, seed: int, name: str,
                cic: bool = False, select=None) -> dict:
    """Trains `model`, keeping the epoch with the best validation score: `select(model)` when given
    (the funnel's own measure), else the validation click AUC."""
    g = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    best, best_state, history = -1.0, None, []
    t0 = time.monotonic()
    n_ctx = len(np.unique(s.s_ctx[s.part_mask(0)]))
    for epoch in range(1, tc.epochs + 1):
        model.train()
        losses = []
        bar = tqdm(_context_batches(s, 0, tc.batch_contexts, g), total=-(-n_ctx // tc.batch_contexts),
                   desc=f"[{name}] epoch {epoch}", file=sys.stderr, leave=False, mininterval=2)
        for c, sel in bar:
            b = feats.batch(s, c, sel, g, tc.oov_dropout)
            y_click = torch.from_numpy(s.s_click[sel])
            if isinstance(model, EM3Rank):
                click, like, c_t, e_t = model.logits(*_em3_args(b), ctx=b["ctx"], hist_unique=b["hist_unique"])
                y_like = torch.from_numpy(s.s_like[sel])
                loss = (F.binary_cross_entropy_with_logits(click, y_click)
                        + tc.like_weight * F.binary_cross_entropy_with_logits(like, y_like)
                        + tc.listwise_weight * listwise_loss(click, y_click, b["ctx"], len(c)))
                if cic and c_t is not None and e_t is not None:
                    loss = loss + tc.cic_weight * model.cic_loss(c_t, e_t, b["cand_item_idx"], tc.cic_temperature)
            else:
                score = model(*_prerank_args(b), ctx=b["ctx"])
                loss = (F.binary_cross_entropy_with_logits(score, y_click)
                        + tc.listwise_weight * listwise_loss(score, y_click, b["ctx"], len(c)))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if tc.time_budget_s and time.monotonic() - t0 > tc.time_budget_s:
                break
        val = evaluate(model, feats, s, 1, vocab)
        score = select(model) if select else val["click_auc"]
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_click_auc": val["click_auc"],
                        "val_click_gauc": val["click_gauc"], **({"val_select": score} if select else {})})
        log(f"[{name}] epoch {epoch}: loss {np.mean(losses):.4f}, val click AUC {val['click_auc']:.4f} "
            f"GAUC {val['click_gauc']:.4f}{f', val select {score:.4f}' if select else ''} "
            f"({time.monotonic() - t0:.0f}s)")
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
        if tc.time_budget_s and time.monotonic() - t0 > tc.time_budget_s:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "train_seconds": round(time.monotonic() - t0, 1)}


def model_config(base: dict, ds: Dataset, vocab: Vocab, content: ContentTable, mode: str | None,
                 recall_dim: int) -> RankModelConfig:
    cfg = RankModelConfig(**base)
    cfg.recall_dim = recall_dim
    cfg.num_users, cfg.num_items = vocab.num_users, vocab.num_items
    cfg.num_genres, cfg.num_years, cfg.content_dim = len(ds.genre_names) + 1, NUM_YEAR_BUCKETS, content.dim
    if mode is not None:
        cfg.use_id, cfg.use_content, _ = MODES[mode]
    return cfg


# ---- the funnel's job: the positive in each test moment's whole recall set ---------------------------

@torch.no_grad()
def funnel_eval(replay: Replay, samples: Samples, feats: Features, prerank, rankers: dict, keep: int,
                fusion: dict, part: int = 2, ks=(10, 20)) -> dict:
    """For every context of `part`: its whole replayed recall set, ordered by recall, by prerank, by
    each ranker (rerank's fusion of its task probabilities) over the whole set, and by the funnel's
    prerank -> keep `keep` -> rank. HR@k and NDCG@k of the positive (0 when recall missed it)."""
    ctxs = np.flatnonzero(samples.ctx_part == part)
    names = ["recall", *(["prerank", *(f"prerank>{n}" for n in rankers)] if prerank is not None else []), *rankers]
    hits = {n: {k: [] for k in ks} for n in names}
    ndcg = {n: {k: [] for k in ks} for n in names}
    recalled = 0
    for c in ctxs:
        k_rep = int(samples.ctx_replay[c])
        cands = replay.candidates(k_rep)
        known = cands >= FIRST_ITEM_IDX
        cands, recall_rows = cands[known], replay.recall_rows(k_rep)[known]
        target = int(replay.ctx_item[k_rep])
        orders = {"recall": np.arange(len(cands))}
        if len(cands):
            one = Samples(samples.ctx_user[c:c + 1], samples.ctx_ts[c:c + 1], samples.ctx_hist[c:c + 1],
                          samples.ctx_hist_ts[c:c + 1], np.array([part]), np.zeros(len(cands), np.int64), cands,
                          np.zeros(len(cands), np.float32), np.zeros(len(cands), np.float32),
                          np.zeros(len(cands), np.int64), None, recall_rows)
            b = feats.batch(one, np.array([0]), np.arange(len(cands)), None)
            kept = None
            if prerank is not None:
                pre = prerank(*_prerank_args(b), ctx=b["ctx"]).numpy()
                orders["prerank"] = np.argsort(-pre, kind="stable")
                kept = orders["prerank"][:keep]
            for name, m in rankers.items():
                click, like, _, _ = m.logits(*_em3_args(b), ctx=b["ctx"])
                fused = (fusion.get("click", 0.0) * torch.sigmoid(click)
                         + fusion.get("like", 0.0) * torch.sigmoid(like)).numpy()
                orders[name] = np.argsort(-fused, kind="stable")
                if kept is not None:
                    orders[f"prerank>{name}"] = kept[np.argsort(-fused[kept], kind="stable")]
        pos = np.flatnonzero(cands == target)
        recalled += int(len(pos) > 0)
        for name in names:
            order = orders.get(name, np.arange(0))
            at = np.flatnonzero(order == pos[0])[0] if len(pos) and len(order) and (order == pos[0]).any() else None
            for k in ks:
                hit = at is not None and at < k
                hits[name][k].append(1.0 if hit else 0.0)
                ndcg[name][k].append(1.0 / np.log2(at + 2) if hit else 0.0)
    out = {"moments": int(len(ctxs)), "recalled": recalled, "keep": keep}
    for name in names:
        for k in ks:
            out[f"hr@{k}_{name}"] = float(np.mean(hits[name][k])) if ctxs.size else 0.0
            out[f"ndcg@{k}_{name}"] = float(np.mean(ndcg[name][k])) if ctxs.size else 0.0
    return out


# ---- export ---------------------------------------------------------------------------------------

def probe_inputs(cfg: RankModelConfig, hist_len: int, max_genres: int, n: int = 7, seed: int = 0,
                 prerank: bool = False) -> dict:
    """A user with a partly padded history, candidates including an OOV item and one without content."""
    g = np.random.default_rng(seed)
    hist = np.zeros((1, hist_len), np.int64)
    filled = max(1, hist_len // 2)
    hist[0, -filled:] = g.integers(1, cfg.num_items, size=filled)
    hist_genres = np.zeros((1, hist_len, max_genres), np.int64)
    hist_genres[0, -filled:, 0] = g.integers(1, cfg.num_genres, size=filled)
    hist_content = np.zeros((1, hist_len, cfg.content_dim), np.float32)
    hist_content[0, -filled:] = g.standard_normal((filled, cfg.content_dim)).astype(np.float32) * 0.05
    cand = g.integers(2, cfg.num_items, size=n)
    cand[0] = OOV_IDX
    has = np.ones(n, np.float32)
    has[1] = 0.0
    content = g.standard_normal((n, cfg.content_dim)).astype(np.float32) * 0.05
    content[1] = 0.0
    genres = np.zeros((n, max_genres), np.int64)
    genres[:, 0] = g.integers(1, cfg.num_genres, size=n)
    feeds = {
        "user_idx": np.array([2 if cfg.num_users > 2 else 1], np.int64), "hist_item_idx": hist,
        "hist_genres": hist_genres, "hist_year": np.where(hist > 0, 90, 0).astype(np.int64),
        "hist_content": hist_content, "cand_item_idx": cand.astype(np.int64), "cand_genres": genres,
        "cand_year": g.integers(0, cfg.num_years, size=n).astype(np.int64), "cand_content": content,
        "cand_has_content": has,
        "cand_recall": np.concatenate([g.random((n, 1)), g.integers(0, 2, (n, cfg.recall_dim - 1))], 1)
        .astype(np.float32),
    }
    return {k: feeds[k] for k in (PRERANK_INPUTS if prerank else EM3_INPUTS)}


def export(model, path: Path, inputs: list[str], outputs: list[str], probe: dict) -> None:
    import onnx

    args = tuple(torch.from_numpy(probe[n]) for n in inputs)
    dynamic = {n: {0: "candidates"} for n in inputs if n.startswith("cand_")}
    dynamic.update({o: {0: "candidates"} for o in outputs})
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path), save_as_external_data=False)


def signature(inputs: list[str], outputs: list[str], probe: dict) -> dict:
    """The tensor contract of one graph, read off the probe's shapes (candidates are the dynamic axis)."""
    L = int(probe["hist_item_idx"].shape[1])
    shapes = {"user_idx": [1], "hist_item_idx": [1, L]}
    for name, value in probe.items():
        if name.startswith("cand_"):
            shapes[name] = ["candidates", *value.shape[1:]]
        elif name.startswith("hist_"):
            shapes[name] = [1, *value.shape[1:]]
    return {"inputs": [{"name": n, "dtype": str(probe[n].dtype), "shape": shapes[n]} for n in inputs],
            "outputs": [{"name": o, "dtype": "float32", "shape": ["candidates"]} for o in outputs]}


def _ort(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def export_graphs(model, staged: Path, inputs: list[str], outputs: list[str], probe: dict) -> tuple[float, dict]:
    """Writes the two serving graphs of `model` into `staged`: `item.onnx`, the part that depends on the
    item alone (run once per item and model version), and `model.onnx`, the rest (per request, over the
    stored item vectors). The graphs chained as serving chains them are checked against the one PyTorch
    forward on `probe` and on a shorter candidate list (the dynamic axis). Returns the parity and the
    manifest fields that describe the graphs (`signature`, `item_tower`, `item_vec_dim`)."""
    model.eval()
    if isinstance(model, TwoTowerPrerank):
        item_graph, score_graph = PrerankItemGraph(model), PrerankScoreGraph(model)
        item_inputs, score_inputs = PRERANK_ITEM_INPUTS, PRERANK_SCORE_INPUTS
    else:
        if not model.cfg.use_content:
            raise ValueError("the served EM3 needs its content path (serve_mode id+content or content)")
        item_graph, score_graph = EM3ItemGraph(model), EM3ScoreGraph(model)
        item_inputs, score_inputs = EM3_ITEM_INPUTS, EM3_SCORE_INPUTS
    # eval mode on the wrappers too: the exporter restores each module's mode afterwards, and a wrapper
    # left in training mode would switch the model's dropout back on
    item_graph, score_graph = item_graph.eval(), score_graph.eval()
    vec = lambda p: item_graph(*(torch.from_numpy(p[n]) for n in item_inputs)).numpy()  # noqa: E731

    def with_vectors(p: dict, item_vec) -> dict:
        out = {**p, "cand_item_vec": item_vec(p)}
        if "hist_item_vec" in score_inputs:
            # the history's item vectors, zeros where the window is padding (as serving builds them)
            hist_has = (np.abs(p["hist_content"][0]).sum(-1) > 0).astype(np.float32)
            rows = item_vec({"cand_genres": p["hist_genres"][0], "cand_year": p["hist_year"][0],
                             "cand_content": p["hist_content"][0], "cand_has_content": hist_has})
            out["hist_item_vec"] = (rows * (p["hist_item_idx"][0] > 0)[:, None]).astype(np.float32)[None]
        return out

    shorter = {k: (v[:3] if k.startswith("cand_") else v) for k, v in probe.items()}
    export(item_graph, staged / "item.onnx", item_inputs, ["item_vec"], probe)
    score_probe = with_vectors(probe, vec)
    export(score_graph, staged / "model.onnx", score_inputs, outputs, score_probe)
    item_sess, score_sess = _ort(staged / "item.onnx"), _ort(staged / "model.onnx")
    onnx_vec = lambda p: item_sess.run(["item_vec"], {n: p[n] for n in item_inputs})[0]  # noqa: E731
    diff = 0.0
    for p in (probe, shorter):
        ref = model(*(torch.from_numpy(p[n]) for n in inputs))
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = score_sess.run(outputs, {n: v for n, v in with_vectors(p, onnx_vec).items() if n in score_inputs})
        diff = max(diff, *(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, ref)))
    dim = int(model.cfg.dim)
    item_sig = signature(item_inputs, [], probe)
    item_sig["outputs"] = [{"name": "item_vec", "dtype": "float32", "shape": ["candidates", dim]}]
    return diff, {"signature": signature(score_inputs, outputs, score_probe), "item_tower": item_sig,
                  "item_vec_dim": dim}


def publish(model, name: str, store_dir: str | Path, version_suffix: str, inputs, outputs, probe,
            vocab_files: dict[str, str], extra: dict, expect_current: str | None = None) -> tuple[str, float]:
    """Exports, checks parity, and publishes a version with the given vocabulary files
    ({"item_vocab.tsv": text, ...}) and manifest fields (expect_current: see store.publish)."""
    version = store.unique_version_name(store_dir, name, version_suffix)
    staged = store.staging_dir(store_dir, name, version)
    try:
        diff, graphs = export_graphs(model, staged, inputs, outputs, probe)
        log(f"[{name}] ONNX parity max |onnxruntime - torch| = {diff:.2e}")
        if not diff <= PARITY_TOLERANCE:
            raise RuntimeError(f"{name}: ONNX parity {diff} exceeds {PARITY_TOLERANCE}")
        for file, text in vocab_files.items():
            (staged / file).write_text(text)
        # PyTorch weights: the online trainer fine-tunes from the serving version (not read by services)
        torch.save(model.state_dict(), staged / "weights.pt")
        manifest = {"model": name, "version": version,
                    "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "files": {}, "onnx_parity_max_abs_diff": diff, **extra, **graphs}
        store.publish(store_dir, name, version, staged, manifest, expect_current=expect_current)
    except BaseException:
        import shutil
        shutil.rmtree(staged, ignore_errors=True)
        raise
    log(f"[{name}] published {store_dir}/{name}/{version}")
    return version, diff


def reexport(name: str, store_dir: str | Path) -> dict:
    """Publishes the serving version of `name` ("em3" or "prerank") again, from its own weights, in
    the export format of this trainer (e.g. prerank's two graphs): same weights, vocabularies and
    manifest fields, a new version that names its parent. Used when the serving format changes."""
    parent = store.read_current(store_dir, name)
    if not parent:
        raise FileNotFoundError(f"no CURRENT version of {name} in {store_dir}")
    vdir = Path(store_dir) / name / parent
    manifest = json.loads((vdir / "manifest.json").read_text())
    cfg = RankModelConfig(**manifest["model_config"])
    model = EM3Rank(cfg) if name == "em3" else TwoTowerPrerank(cfg)
    model.load_state_dict(torch.load(vdir / "weights.pt", weights_only=True))
    model.eval()
    prerank = name == "prerank"
    probe = probe_inputs(cfg, int(manifest["max_hist_len"]), int(manifest["max_genres"]), prerank=prerank)
    keep = {k: v for k, v in manifest.items()
            if k not in ("model", "version", "created_at", "files", "onnx_parity_max_abs_diff")}
    suffix = parent.split("-", 1)[1] if "-" in parent else "reexport"
    version, diff = publish(
        model, name, store_dir, suffix, PRERANK_INPUTS if prerank else EM3_INPUTS,
        ["score"] if prerank else list(EM3Rank.TASKS), probe,
        {f: (vdir / f).read_text() for f in ("item_vocab.tsv", "user_vocab.tsv", "genre_vocab.tsv")},
        {**keep, "reexported_from": parent}, expect_current=parent)
    return {"model": name, "parent": parent, "version": version, "parity": diff}


# ---- the run --------------------------------------------------------------------------------------

def run(cfg: RankRunConfig, data_dir: str | Path, store_dir: str | Path, replay_path: str | Path,
        docs: str | Path | None = None) -> dict:
    t_start = time.monotonic()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    ds = load_dataset(data_dir)
    known = ~held_out_mask(ds)
    vocab = build_vocab(ds, known)
    content = load_content(store_dir, ds)
    replay = read_replay(replay_path, ds)
    samples = build_samples(ds, replay, cfg.samples, seed=cfg.seed, log=log)
    checked = check_no_leakage(samples)
    counts = samples.counts()
    log(f"[rank] samples {json.dumps(counts)}; leakage check passed on {checked} history events; "
        f"vocab: {vocab.num_items - 2} warm items, {vocab.num_users - 2} users")
    feats = Features(ds, vocab, content, len(replay.recall_features))
    L, G, C = cfg.samples.max_hist_len, ds.item_genres.shape[1], content.dim

    results, models = {}, {}
    for i, mode in enumerate(cfg.ablations):
        torch.manual_seed(cfg.seed + i)
        mc = model_config(cfg.model, ds, vocab, content, mode, feats.recall_dim)
        model = EM3Rank(mc)
        info = train_model(model, feats, samples, cfg.train, vocab, cfg.seed + i, f"em3:{mode}", cic=MODES[mode][2],
                           select=lambda m: funnel_eval(replay, samples, feats, None, {"m": m}, cfg.prerank_keep,
                                                        cfg.fusion, part=1, ks=(10,))["ndcg@10_m"])
        results[mode] = {"test": evaluate(model, feats, samples, 2, vocab),
                         "val": evaluate(model, feats, samples, 1, vocab), **info}
        log(f"[em3:{mode}] test {json.dumps({k: round(v, 4) for k, v in results[mode]['test'].items()})}")
        models[mode] = model

    # reference: popularity (interaction count outside the held-out events) as the score of both tasks
    train_counts = np.bincount(ds.items[known], minlength=ds.vocab_size).astype(np.float64)
    results["popularity"] = {"test": evaluate(lambda rows: train_counts[samples.s_item[rows]], feats, samples, 2,
                                              vocab)}
    log(f"[popularity] test {json.dumps({k: round(v, 4) for k, v in results['popularity']['test'].items()})}")

    torch.manual_seed(cfg.seed + 100)
    pcfg = model_config(cfg.prerank_model, ds, vocab, content, None, feats.recall_dim)
    prerank = TwoTowerPrerank(pcfg)
    # prerank keeps what rank puts on top: its epoch is chosen by the validation NDCG@10 of prerank's
    # top `prerank_keep` re-ordered by the served rank model, plus that of prerank's own order. The
    # first alone is nearly flat across epochs (rank re-orders whatever survives), so it picked an
    # undertrained first epoch whose own order was barely better than recall's; the own order is
    # also what the funnel serves when rank fails open.
    def prerank_select(m) -> float:
        r = funnel_eval(replay, samples, feats, m, {"rank": models[cfg.serve_mode]}, cfg.prerank_keep,
                        cfg.fusion, part=1, ks=(10,))
        return r["ndcg@10_prerank>rank"] + r["ndcg@10_prerank"]

    p_info = train_model(prerank, feats, samples, cfg.prerank_train, vocab, cfg.seed + 100, "prerank",
                         select=prerank_select)
    p_test = evaluate(prerank, feats, samples, 2, vocab)
    log(f"[prerank] test {json.dumps({k: round(v, 4) for k, v in p_test.items()})}")

    serve = models[cfg.serve_mode]
    funnel = funnel_eval(replay, samples, feats, prerank, {f"em3:{m}": x for m, x in models.items()},
                         cfg.prerank_keep, cfg.fusion)
    log(f"[rank] funnel {json.dumps(funnel)}")

    common = {
        "max_hist_len": L, "max_genres": G, "content_dim": C, "year_min": YEAR_MIN, "year_max": YEAR_MAX,
        "num_year_buckets": NUM_YEAR_BUCKETS, "content_model_version": content.version,
        "recall_features": replay.recall_features,
        "content_encoder_sha256": content.encoder_sha,
        "history_rule": "events strictly before the scored moment, types other than IMPRESSION/SKIP/DISLIKE, "
                        "the last max_hist_len, oldest first, left-padded",
        "data": {"dir": str(data_dir), "name": ds.manifest.get("name"),
                 "split": "replayed recall moments before each user's held-out last event; per user the latest "
                          "moment tests, the one before validates",
                 "samples": counts, "leakage_check": {"history_events_checked": checked, "passed": True},
                 "recall_replay": {k: replay.header.get(k) for k in ("channels", "quotas", "contexts", "moments")},
                 "sample_config": asdict(cfg.samples)},
    }
    vocab_files = {f"{kind}_vocab.tsv": vocab.tsv(kind) for kind in ("item", "user", "genre")}
    probe = probe_inputs(serve.cfg, L, G)
    em3_version, em3_parity = publish(
        serve, "em3", store_dir, f"{cfg.profile}", EM3_INPUTS, list(EM3Rank.TASKS), probe, vocab_files,
        {**common, "tasks": list(EM3Rank.TASKS), "serve_mode": cfg.serve_mode,
         "model_config": serve.cfg.to_dict(), "train_config": asdict(cfg.train),
         "metrics": {"ablations": results, "funnel": funnel}})
    pprobe = probe_inputs(pcfg, L, G, prerank=True)
    pre_version, pre_parity = publish(
        prerank, "prerank", store_dir, f"{cfg.profile}", PRERANK_INPUTS, ["score"], pprobe,
        vocab_files, {**common, "tasks": ["click"],
                "model_config": pcfg.to_dict(), "train_config": asdict(cfg.prerank_train),
                "metrics": {"test": p_test, **p_info}})
    summary = {"profile": cfg.profile, "em3": {"version": em3_version, "parity": em3_parity},
               "prerank": {"version": pre_version, "parity": pre_parity, "test": p_test},
               "ablations": {m: r["test"] for m, r in results.items()}, "funnel": funnel, "samples": counts,
               "seconds": round(time.monotonic() - t_start, 1)}
    if docs:
        write_docs(Path(docs), summary, cfg, data_dir)
    log(f"[rank] done in {summary['seconds']:.0f}s")
    return summary


def write_docs(path: Path, summary: dict, cfg: RankRunConfig, data_dir) -> None:
    """Writes the ranking section of docs/evaluation.md between its markers."""
    ab = summary["ablations"]
    base = ab.get("id", {})
    f = lambda v: "n/a" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    lines = [
        f"Command: `npm run train:rank -- --profile {cfg.profile}` "
        f"(= `bash scripts/train-rank.sh --profile {cfg.profile} --docs docs/evaluation.md`), data `{data_dir}`, "
        f"{dt.date.today().isoformat()}, 2-core CPU box. Samples: the served recall replayed at the moments before "
        "each user's held-out last event (the latest moment tests, the one before validates); per part: "
        + ", ".join(f"{k} {v['samples']} ({v['positives']} positives)" for k, v in summary["samples"].items()) + ".",
        "",
        "| rank model (test) | click AUC | click GAUC | like AUC | like GAUC | cold-item click AUC | cold-item like AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, r in ab.items():
        lines.append(f"| {mode} | {f(r.get('click_auc'))} | {f(r.get('click_gauc'))} | {f(r.get('like_auc'))} | "
                     f"{f(r.get('like_gauc'))} | {f(r.get('click_cold_auc'))} | {f(r.get('like_cold_auc'))} |")
    p = summary["prerank"]["test"]
    lines += [f"| prerank (two-tower, click only) | {f(p.get('click_auc'))} | {f(p.get('click_gauc'))} | | | "
              f"{f(p.get('click_cold_auc'))} | |", ""]
    full = ab.get("id+content", {})
    if base and full and (full.get("cold_samples") or 0) >= 50:
        lines += [
            f"ID+content click GAUC - ID-only = {full['click_gauc'] - base['click_gauc']:+.4f}; cold-item click AUC "
            f"ID+content - ID-only = {full['click_cold_auc'] - base['click_cold_auc']:+.4f}. Cold test samples: "
            f"{full.get('cold_samples')} ({full.get('cold_positives')} positives).", ""]
    elif full:
        lines += [
            f"Cold items: {full.get('cold_samples')} test samples. Every item with an event outside the held-out "
            "ones is in the vocabulary, so the replayed sets hold almost no cold items; what content does for them "
            "is measured by `npm run eval:coldstart` (the Cold start section).", ""]
    n = summary["funnel"]
    lines += [f"The funnel's job on the {n['moments']} test moments (each user's latest replayed moment whose "
              "positive recall handed over): the whole recall set ordered by each "
              f"model; `prerank>X` keeps prerank's top {n['keep']}, then X orders them; EM3 orders by the rerank "
              "fusion of its task probabilities. HR@K: the positive in the first K.", "",
              "| ordering | HR@10 | NDCG@10 | HR@20 | NDCG@20 |", "|---|---|---|---|---|"]
    for k in n:
        if k.startswith("hr@10_"):
            name = k.split("_", 1)[1]
            lines.append(f"| {name} | {n[k]:.4f} | {n[f'ndcg@10_{name}']:.4f} | {n[f'hr@20_{name}']:.4f} | "
                         f"{n[f'ndcg@20_{name}']:.4f} |")
    lines += ["", f"Published: em3 `{summary['em3']['version']}` (parity {summary['em3']['parity']:.1e}), "
              f"prerank `{summary['prerank']['version']}` (parity {summary['prerank']['parity']:.1e}); "
              f"run time {summary['seconds']:.0f} s."]
    text = path.read_text() if path.exists() else ""
    begin, end = "<!-- ranking:begin -->", "<!-- ranking:end -->"
    block = f"{begin}\n" + "\n".join(lines) + f"\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n## Ranking: prerank and EM3 rank\n\n" + block + "\n"
    path.write_text(text)
