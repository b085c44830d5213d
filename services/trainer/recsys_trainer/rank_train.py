"""Train, evaluate, export and publish the prerank and EM3 rank models (docs/ranking.md).

    python -m recsys_trainer rank --profile quick|default|full [--data DIR] [--store DIR]
                                  [--recall-store DIR] [--docs docs/evaluation.md]

One run: samples (rank_data) -> ablations of the rank model (ID-only, content-only,
ID+content, ID+content without CIC) -> the two-tower prerank -> AUC/GAUC per task
on the temporal test split, cold items separately -> funnel NDCG@10 on the replayed
recall set -> ONNX export + parity -> publish `em3` and `prerank` versions.
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
from .rank_data import (ContentTable, RecallReplay, SampleConfig, Samples, TemporalSplit, Vocab, build_samples,
                        build_vocab, check_no_leakage, history_windows, load_content, temporal_split)
from .rank_model import EM3Rank, RankModelConfig, TwoTowerPrerank

PARITY_TOLERANCE = 1e-4
OPSET = 18
EM3_INPUTS = ["user_idx", "hist_item_idx", "hist_genres", "hist_year", "hist_content", "cand_item_idx",
              "cand_genres", "cand_year", "cand_content", "cand_has_content"]
PRERANK_INPUTS = ["user_idx", "hist_item_idx", "cand_item_idx", "cand_genres", "cand_year", "cand_content",
                  "cand_has_content"]
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
    ndcg_recall_depth: int = 200


def load_rank_config(profile: str, path: str | Path | None = None) -> RankRunConfig:
    path = Path(path) if path else CONFIG_DIR / f"rank.{profile}.json"
    raw = json.loads(path.read_text())
    return RankRunConfig(
        profile=raw.get("profile", profile), seed=raw.get("seed", 42), threads=raw.get("threads", 2),
        serve_mode=raw.get("serve_mode", "id+content"), ablations=raw.get("ablations", list(MODES)),
        samples=SampleConfig(**raw.get("samples", {})), model=raw.get("model", {}),
        prerank_model=raw.get("prerank_model", {}), train=RankTrainConfig(**raw.get("train", {})),
        prerank_train=RankTrainConfig(**raw.get("prerank_train", {})),
        ndcg_recall_depth=raw.get("ndcg_recall_depth", 200))


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

    def __init__(self, ds: Dataset, vocab: Vocab, content: ContentTable):
        self.ds, self.vocab, self.content = ds, vocab, content
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

def train_model(model, feats: Features, s: Samples, tc: RankTrainConfig, vocab: Vocab, seed: int, name: str,
                cic: bool = False) -> dict:
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
                        + tc.like_weight * F.binary_cross_entropy_with_logits(like, y_like))
                if cic and c_t is not None and e_t is not None:
                    loss = loss + tc.cic_weight * model.cic_loss(c_t, e_t, b["cand_item_idx"], tc.cic_temperature)
            else:
                loss = F.binary_cross_entropy_with_logits(model(*_prerank_args(b), ctx=b["ctx"]), y_click)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if tc.time_budget_s and time.monotonic() - t0 > tc.time_budget_s:
                break
        val = evaluate(model, feats, s, 1, vocab)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_click_auc": val["click_auc"],
                        "val_click_gauc": val["click_gauc"]})
        log(f"[{name}] epoch {epoch}: loss {np.mean(losses):.4f}, val click AUC {val['click_auc']:.4f} "
            f"GAUC {val['click_gauc']:.4f} ({time.monotonic() - t0:.0f}s)")
        if val["click_auc"] > best:
            best, best_state = val["click_auc"], copy.deepcopy(model.state_dict())
        if tc.time_budget_s and time.monotonic() - t0 > tc.time_budget_s:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "train_seconds": round(time.monotonic() - t0, 1)}


def model_config(base: dict, ds: Dataset, vocab: Vocab, content: ContentTable, mode: str | None) -> RankModelConfig:
    cfg = RankModelConfig(**base)
    cfg.num_users, cfg.num_items = vocab.num_users, vocab.num_items
    cfg.num_genres, cfg.num_years, cfg.content_dim = len(ds.genre_names) + 1, NUM_YEAR_BUCKETS, content.dim
    if mode is not None:
        cfg.use_id, cfg.use_content, _ = MODES[mode]
    return cfg


# ---- funnel NDCG@10 ---------------------------------------------------------------------------------

@torch.no_grad()
def funnel_ndcg(ds: Dataset, split: TemporalSplit, replay: RecallReplay, feats: Features, models: dict,
                hist_len: int, depth: int, users_limit: int = 0, k: int = 10) -> dict:
    """For every user with test-period events: the replayed recall set at the test cut (top `depth`),
    relevance = the items the user rated in the test period. NDCG@k of the recall order vs each
    model's order (and the rerank's default fusion click + 0.5 like for EM3)."""
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
    test = ds.timestamps >= split.t_test
    users = np.unique(user_of[test])
    if users_limit:
        users = users[:users_limit]
    ts = np.full(len(users), split.t_test, np.int64)
    r_items, r_ts, r_rat = history_windows(ds, users, ts, replay.L)
    recalled = replay.top(r_items, r_ts, r_rat, depth)
    hist, _, _ = history_windows(ds, users, ts, hist_len)
    sums = {name: [] for name in ["recall", *models]}
    hits_users = 0
    for r, u in enumerate(users):
        rel_items = set(ds.items[ds.offsets[u]:ds.offsets[u + 1]][test[ds.offsets[u]:ds.offsets[u + 1]]].tolist())
        cands = recalled[r]
        rel = np.array([1.0 if i in rel_items else 0.0 for i in cands])
        n_rel = len(rel_items)
        if rel.sum() > 0:
            hits_users += 1
        sums["recall"].append(ndcg_at(rel, n_rel, k))
        s = Samples(np.array([u]), np.array([split.t_test]), hist[r:r + 1], np.zeros_like(hist[r:r + 1]),
                    np.array([2]), np.zeros(len(cands), np.int64), cands, rel.astype(np.float32),
                    rel.astype(np.float32), np.zeros(len(cands), np.int64))
        b = feats.batch(s, np.array([0]), np.arange(len(cands)), None)
        for name, m in models.items():
            if isinstance(m, EM3Rank):
                click, like, _, _ = m.logits(*_em3_args(b), ctx=b["ctx"])
                score = torch.sigmoid(click) + 0.5 * torch.sigmoid(like)
            else:
                score = m(*_prerank_args(b), ctx=b["ctx"])
            order = np.argsort(-score.numpy(), kind="stable")
            sums[name].append(ndcg_at(rel[order], n_rel, k))
    return {"users": int(len(users)), "users_with_a_hit": hits_users, "recall_depth": depth,
            **{f"ndcg@{k}_{name}": float(np.mean(v)) for name, v in sums.items()}}


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


@torch.no_grad()
def parity(model, path: Path, inputs: list[str], outputs: list[str], probe: dict) -> float:
    import onnxruntime as ort

    ref = model(*(torch.from_numpy(probe[n]) for n in inputs))
    ref = ref if isinstance(ref, tuple) else (ref,)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(outputs, {n: probe[n] for n in inputs})
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, ref))


def signature(inputs: list[str], outputs: list[str], probe: dict, L: int, G: int, C: int) -> dict:
    shapes = {"user_idx": [1], "hist_item_idx": [1, L], "hist_genres": [1, L, G], "hist_year": [1, L],
              "hist_content": [1, L, C], "cand_item_idx": ["candidates"], "cand_genres": ["candidates", G],
              "cand_year": ["candidates"], "cand_content": ["candidates", C], "cand_has_content": ["candidates"]}
    return {"inputs": [{"name": n, "dtype": str(probe[n].dtype), "shape": shapes[n]} for n in inputs],
            "outputs": [{"name": o, "dtype": "float32", "shape": ["candidates"]} for o in outputs]}


def publish(model, name: str, store_dir: str | Path, version_suffix: str, inputs, outputs, probe,
            vocab_files: dict[str, str], extra: dict, expect_current: str | None = None) -> tuple[str, float]:
    """Exports, checks parity, and publishes a version with the given vocabulary files
    ({"item_vocab.tsv": text, ...}) and manifest fields (expect_current: see store.publish)."""
    version = store.unique_version_name(store_dir, name, version_suffix)
    staged = store.staging_dir(store_dir, name, version)
    try:
        export(model, staged / "model.onnx", inputs, outputs, probe)
        diff = parity(model, staged / "model.onnx", inputs, outputs, probe)
        # a second probe with another candidate count checks the dynamic axis
        probe2 = {k: (v[:3] if k.startswith("cand_") else v) for k, v in probe.items()}
        diff = max(diff, parity(model, staged / "model.onnx", inputs, outputs, probe2))
        log(f"[{name}] ONNX parity max |onnxruntime - torch| = {diff:.2e}")
        if not diff <= PARITY_TOLERANCE:
            raise RuntimeError(f"{name}: ONNX parity {diff} exceeds {PARITY_TOLERANCE}")
        for file, text in vocab_files.items():
            (staged / file).write_text(text)
        # PyTorch weights: the online trainer fine-tunes from the serving version (not read by services)
        torch.save(model.state_dict(), staged / "weights.pt")
        manifest = {"model": name, "version": version,
                    "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "files": {}, "onnx_parity_max_abs_diff": diff, **extra}
        store.publish(store_dir, name, version, staged, manifest, expect_current=expect_current)
    except BaseException:
        import shutil
        shutil.rmtree(staged, ignore_errors=True)
        raise
    log(f"[{name}] published {store_dir}/{name}/{version}")
    return version, diff


# ---- the run --------------------------------------------------------------------------------------

def run(cfg: RankRunConfig, data_dir: str | Path, store_dir: str | Path, recall_store: str | Path,
        docs: str | Path | None = None) -> dict:
    t_start = time.monotonic()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    ds = load_dataset(data_dir)
    split = temporal_split(ds, cfg.samples.val_quantile, cfg.samples.test_quantile)
    vocab = build_vocab(ds, split)
    content = load_content(store_dir, ds)
    replay = RecallReplay(recall_store, ds)
    samples = build_samples(ds, split, replay, cfg.samples, seed=cfg.seed, log=log)
    checked = check_no_leakage(samples)
    counts = samples.counts()
    log(f"[rank] samples {json.dumps(counts)}; leakage check passed on {checked} history events; "
        f"vocab: {vocab.num_items - 2} warm items, {vocab.num_users - 2} users")
    feats = Features(ds, vocab, content)
    L, G, C = cfg.samples.max_hist_len, ds.item_genres.shape[1], content.dim

    results, models = {}, {}
    for i, mode in enumerate(cfg.ablations):
        torch.manual_seed(cfg.seed + i)
        mc = model_config(cfg.model, ds, vocab, content, mode)
        model = EM3Rank(mc)
        info = train_model(model, feats, samples, cfg.train, vocab, cfg.seed + i, f"em3:{mode}", cic=MODES[mode][2])
        results[mode] = {"test": evaluate(model, feats, samples, 2, vocab),
                         "val": evaluate(model, feats, samples, 1, vocab), **info}
        log(f"[em3:{mode}] test {json.dumps({k: round(v, 4) for k, v in results[mode]['test'].items()})}")
        models[mode] = model

    # reference: training-period popularity (interaction count) as the score of both tasks
    train_counts = np.bincount(ds.items[ds.timestamps < split.t_val], minlength=ds.vocab_size).astype(np.float64)
    results["popularity"] = {"test": evaluate(lambda rows: train_counts[samples.s_item[rows]], feats, samples, 2,
                                              vocab)}
    log(f"[popularity] test {json.dumps({k: round(v, 4) for k, v in results['popularity']['test'].items()})}")

    torch.manual_seed(cfg.seed + 100)
    pcfg = model_config(cfg.prerank_model, ds, vocab, content, None)
    prerank = TwoTowerPrerank(pcfg)
    p_info = train_model(prerank, feats, samples, cfg.prerank_train, vocab, cfg.seed + 100, "prerank")
    p_test = evaluate(prerank, feats, samples, 2, vocab)
    log(f"[prerank] test {json.dumps({k: round(v, 4) for k, v in p_test.items()})}")

    serve = models[cfg.serve_mode]
    ndcg = funnel_ndcg(ds, split, replay, feats, {"prerank": prerank, **{f"em3:{m}": x for m, x in models.items()}},
                       L, cfg.ndcg_recall_depth)
    log(f"[rank] funnel {json.dumps(ndcg)}")

    common = {
        "max_hist_len": L, "max_genres": G, "content_dim": C, "year_min": YEAR_MIN, "year_max": YEAR_MAX,
        "num_year_buckets": NUM_YEAR_BUCKETS, "content_model_version": content.version,
        "content_encoder_sha256": content.encoder_sha,
        "history_rule": "events strictly before the scored moment, types other than IMPRESSION/SKIP/DISLIKE, "
                        "the last max_hist_len, oldest first, left-padded",
        "data": {"dir": str(data_dir), "name": ds.manifest.get("name"), "split": "global temporal",
                 "t_val": split.t_val, "t_test": split.t_test, "samples": counts,
                 "leakage_check": {"history_events_checked": checked, "passed": True},
                 "recall_replay": {"model": "kuaiformer", "version": replay.version},
                 "sample_config": asdict(cfg.samples)},
    }
    vocab_files = {f"{kind}_vocab.tsv": vocab.tsv(kind) for kind in ("item", "user", "genre")}
    probe = probe_inputs(serve.cfg, L, G)
    em3_version, em3_parity = publish(
        serve, "em3", store_dir, f"{cfg.profile}", EM3_INPUTS, list(EM3Rank.TASKS), probe, vocab_files,
        {**common, "tasks": list(EM3Rank.TASKS), "serve_mode": cfg.serve_mode,
         "signature": signature(EM3_INPUTS, list(EM3Rank.TASKS), probe, L, G, C),
         "model_config": serve.cfg.to_dict(), "train_config": asdict(cfg.train),
         "metrics": {"ablations": results, "funnel": ndcg}})
    pprobe = probe_inputs(pcfg, L, G, prerank=True)
    pre_version, pre_parity = publish(
        prerank, "prerank", store_dir, f"{cfg.profile}", PRERANK_INPUTS, ["score"], pprobe,
        vocab_files, {**common, "tasks": ["click"], "signature": signature(PRERANK_INPUTS, ["score"], pprobe, L, G, C),
                "model_config": pcfg.to_dict(), "train_config": asdict(cfg.prerank_train),
                "metrics": {"test": p_test, **p_info}})
    summary = {"profile": cfg.profile, "em3": {"version": em3_version, "parity": em3_parity},
               "prerank": {"version": pre_version, "parity": pre_parity, "test": p_test},
               "ablations": {m: r["test"] for m, r in results.items()}, "funnel": ndcg, "samples": counts,
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
        f"(= `python -m recsys_trainer rank --profile {cfg.profile} --docs docs/evaluation.md`), data `{data_dir}`, "
        f"{dt.date.today().isoformat()}, 2-core CPU box. Global temporal split (train < 80th, val < 90th percentile "
        "of timestamps, test after); samples per part: "
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
    if base and full:
        lines += [
            f"Targets: ID+content click GAUC - ID-only = {full['click_gauc'] - base['click_gauc']:+.4f} (target >= +0.01); "
            f"cold-item click AUC ID+content - ID-only = {full['click_cold_auc'] - base['click_cold_auc']:+.4f} "
            f"(target >= +0.05). Cold test samples: {full.get('cold_samples')} ({full.get('cold_positives')} positives).",
            ""]
    n = summary["funnel"]
    lines += [f"Funnel NDCG@10 on the replayed KuaiFormer recall set (top {n['recall_depth']} at the test cut, "
              f"{n['users']} test users, {n['users_with_a_hit']} with a relevant item in it; relevance = rated "
              "in the test period; EM3 ordered by the rerank default fusion click + 0.5 like):", "",
              "| ordering | NDCG@10 |", "|---|---|"]
    for k, v in n.items():
        if k.startswith("ndcg@"):
            lines.append(f"| {k.split('_', 1)[1]} | {v:.4f} |")
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
