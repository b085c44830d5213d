"""Generative retrieval with semantic IDs (TIGER / OneRec style; docs/models.md "Generative").

1. Semantic IDs. Every catalogue item gets a point in a quantisation space:
   [w * PCA(content) ; ID embedding], the content vector from the store's `content` model and the ID
   embedding from the store's KuaiFormer. An item without training events (cold) gets a ridge
   regression from its content in place of the ID part, so a new item's address comes from its text
   alone. Residual k-means gives one code per level; items that share every level are told apart by a
   last collision level (their rank by training events). (c1, c2, c3, k) names exactly one item.
2. The model reads the user's last `max_history` items (each the sum of its code embeddings) with a
   bidirectional Transformer encoder, and a small causal decoder with cross-attention generates the
   next item's codes token by token. Beam search, constrained to code paths that exist, ranks items.
3. Export: one ONNX graph `history` [B, H, L] + `prefix` [W, t] -> `logits` [W, V] of the next token
   (the history batch is 1 at serving and broadcast to the W beams). The serving channel
   (services/recall/src/channels/generative.ts) runs the same beam search; the manifest carries probe
   users and this trainer's top items for them, which the channel's tests reproduce.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import store
from .config import CONFIG_DIR
from .data import FIRST_ITEM_IDX, Dataset, item_counts, load_dataset, per_user_split
from .model import Block

NEG = -1e9
PAD, BOS = 0, 1
FIRST_CODE_TOKEN = 2
INPUT_NAMES = ["history", "prefix"]
OUTPUT_NAME = "logits"
OPSET = 18
PARITY_TOLERANCE = 1e-4


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class GenConfig:
    profile: str = "default"
    seed: int = 42
    threads: int = 2
    codebook_sizes: list[int] = field(default_factory=lambda: [32, 32, 32])
    collision_size: int = 16          # the last level: up to this many items per code path
    content_dims: int = 32            # PCA dimensions of the content part
    content_weight: float = 1.0       # its weight against the (unit) ID part
    ridge: float = 1.0                # content -> ID embedding regression, for cold items
    kmeans_iters: int = 25
    dim: int = 64
    encoder_layers: int = 2
    decoder_layers: int = 2
    heads: int = 2
    ffn_mult: int = 4
    dropout: float = 0.1
    max_history: int = 50
    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    user_cap: int = 0                 # at most this many samples per user per epoch (0 = all)
    time_budget_s: float = 0
    patience: int = 3
    eval_beam: int = 100
    probe_users: int = 8

    @property
    def levels(self) -> list[int]:
        return [*self.codebook_sizes, self.collision_size]


def load_gen_config(profile: str, path: str | Path | None = None) -> GenConfig:
    path = Path(path) if path else CONFIG_DIR / f"generative.{profile}.json"
    raw = json.loads(path.read_text())
    known = {f for f in GenConfig.__dataclass_fields__}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return GenConfig(**raw)


# ---- semantic IDs --------------------------------------------------------------------------------


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class Quantiser:
    """content (D_c) -> quantisation space -> codes. Stored as projection.f32 and codebooks.f32."""
    mean: np.ndarray          # [D_c]
    pca: np.ndarray           # [P, D_c]
    ridge: np.ndarray         # [R, D_c]  content -> ID embedding (R = ID dim)
    content_weight: float
    codebooks: list[np.ndarray]   # level l: [K_l, P + R]

    def from_content(self, content: np.ndarray) -> np.ndarray:
        c = content - self.mean
        return np.concatenate([self.content_weight * _normalise(c @ self.pca.T), _normalise(c @ self.ridge.T)], 1)

    def space(self, content: np.ndarray, id_emb: np.ndarray, warm: np.ndarray) -> np.ndarray:
        x = self.from_content(content)
        P = self.pca.shape[0]
        x[warm, P:] = _normalise(id_emb[warm])
        return x

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Residual nearest-centroid codes [N, levels-1] (the collision level is assigned apart)."""
        r = x.astype(np.float64).copy()
        codes = np.zeros((len(x), len(self.codebooks)), np.int64)
        for level, book in enumerate(self.codebooks):
            codes[:, level] = _nearest(r, book)
            r -= book[codes[:, level]]
        return codes


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre (squared Euclidean)."""
    return ((x ** 2).sum(1, keepdims=True) - 2 * x @ centres.T + (centres ** 2).sum(1)[None, :]).argmin(1)


def kmeans(x: np.ndarray, k: int, iters: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; an empty cluster is re-seeded at the worst-fit point."""
    n = len(x)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for j in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres[j] = x[rng.choice(n, p=p)]
        d2 = np.minimum(d2, ((x - centres[j]) ** 2).sum(1))
    xx = (x ** 2).sum(1, keepdims=True)
    for _ in range(iters):
        d = xx - 2 * x @ centres.T + (centres ** 2).sum(1)[None, :]
        a = d.argmin(1)
        best = d[np.arange(n), a]
        for j in range(k):
            members = a == j
            if members.any():
                centres[j] = x[members].mean(0)
            else:
                far = best.argmax()
                centres[j] = x[far]
                best[far] = 0
    return centres


def build_semantic_ids(cfg: GenConfig, content: np.ndarray, id_emb: np.ndarray, warm: np.ndarray,
                       popularity: np.ndarray, rng: np.random.Generator):
    """Returns (quantiser, codes [N, levels] with -1 rows for items past the collision level, stats)."""
    mean = content.mean(0)
    c = content - mean
    _, _, vt = np.linalg.svd(c[warm] if warm.sum() > cfg.content_dims else c, full_matrices=False)
    pca = vt[: cfg.content_dims]
    xw = c[warm]
    yw = _normalise(id_emb[warm])
    ridge = np.linalg.solve(xw.T @ xw + cfg.ridge * np.eye(c.shape[1]), xw.T @ yw).T      # [R, D_c]
    q = Quantiser(mean, pca, ridge, cfg.content_weight, [])
    x = q.space(content, id_emb, warm)
    r = x.copy()
    levels = []
    for k in cfg.codebook_sizes:
        book = kmeans(r, k, cfg.kmeans_iters, rng)
        q.codebooks.append(book)
        levels.append(_nearest(r, book))
        r = r - book[levels[-1]]
    codes3 = np.stack(levels, 1)          # what q.assign(x) gives, as served for new items
    # the collision level: within one code path, items ranked by training events (then by index)
    order = np.lexsort((np.arange(len(x)), -popularity, *codes3.T[::-1]))
    codes = np.full((len(x), len(cfg.levels)), -1, np.int64)
    rank = 0
    prev = None
    for i in order:
        key = tuple(codes3[i])
        rank = rank + 1 if key == prev else 0
        prev = key
        if rank < cfg.collision_size:
            codes[i, :-1] = codes3[i]
            codes[i, -1] = rank
    paths, sizes = np.unique(codes3, axis=0, return_counts=True)
    stats = {"items": int(len(x)), "code_paths": int(len(paths)), "unique_paths_share": float((sizes == 1).sum() / len(x)),
             "largest_collision_group": int(sizes.max()), "items_without_code": int((codes[:, 0] < 0).sum()),
             "residual_mse": float((r ** 2).sum(1).mean())}
    return q, codes, stats


class CodeTable:
    """Token offsets per level, and the valid next codes after each prefix (dense masks)."""

    def __init__(self, levels: list[int], codes: np.ndarray):
        self.levels = levels
        self.offsets = [FIRST_CODE_TOKEN + sum(levels[:i]) for i in range(len(levels))]
        self.vocab = FIRST_CODE_TOKEN + sum(levels)
        ok = codes[:, 0] >= 0
        self.item_of_path = np.full(int(np.prod(levels)), -1, np.int64)
        self.masks = []
        flat = np.zeros(len(codes), np.int64)
        for level, k in enumerate(levels):
            m = np.zeros((int(np.prod(levels[:level])), k), bool)
            m[flat[ok], codes[ok, level]] = True
            self.masks.append(m)
            flat = flat * k + np.maximum(codes[:, level], 0)
        self.item_of_path[flat[ok]] = np.flatnonzero(ok)

    def tokens(self, codes: np.ndarray) -> np.ndarray:
        """codes [..., L] (-1 = none) -> tokens [..., L] (0 = padding)."""
        t = codes + np.asarray(self.offsets)
        return np.where(codes[..., :1] >= 0, t, PAD)


# ---- model ---------------------------------------------------------------------------------------


class CrossBlock(nn.Module):
    """Pre-LN decoder block: causal self-attention, cross-attention to the history, FFN."""

    def __init__(self, dim: int, heads: int, ffn_mult: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_qkv = nn.Linear(dim, 3 * dim)
        self.self_out = nn.Linear(dim, dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.cross_out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)

    def _attend(self, q, k, v, bias):
        d = q.shape[-1]
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (float(d) ** -0.5) + bias, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2)
        return y.reshape(y.shape[0], y.shape[1], -1)

    def forward(self, y, causal_bias, memory, memory_bias):
        """y [B, W, t, D]: W beams of t tokens per history. Self-attention stays inside a beam; for the
        cross-attention the W * t tokens are the queries of their one history (beams never mix there)."""
        b, w, t, d = y.shape
        h = self.ln1(y).reshape(-1, t, d)
        q, k, v = self.self_qkv(h).chunk(3, dim=-1)
        s = self.self_out(self._attend(self._heads(q), self._heads(k), self._heads(v), causal_bias))
        y = y + self.drop(s.reshape(b, w, t, d))
        h = self.ln2(y).reshape(b, -1, d)
        k, v = self.kv(memory).chunk(2, dim=-1)
        c = self.cross_out(self._attend(self._heads(self.q(h)), self._heads(k), self._heads(v), memory_bias))
        y = y + self.drop(c.reshape(b, w, t, d))
        return y + self.drop(self.ffn(self.ln3(y)))


class GenerativeRetriever(nn.Module):
    def __init__(self, cfg: GenConfig, vocab: int):
        super().__init__()
        self.cfg = cfg
        d, L = cfg.dim, len(cfg.levels)
        self.vocab = vocab
        self.code_emb = nn.Embedding(vocab, d, padding_idx=PAD)
        self.hist_pos = nn.Parameter(torch.randn(cfg.max_history, d) * 0.02)
        self.encoder = nn.ModuleList(Block(d, cfg.heads, cfg.ffn_mult, cfg.dropout, 0.0)
                                     for _ in range(cfg.encoder_layers))
        self.enc_ln = nn.LayerNorm(d)
        self.dec_pos = nn.Parameter(torch.randn(L, d) * 0.02)
        self.decoder = nn.ModuleList(CrossBlock(d, cfg.heads, cfg.ffn_mult, cfg.dropout)
                                     for _ in range(cfg.decoder_layers))
        self.dec_ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("causal", torch.tril(torch.ones(L, L, dtype=torch.bool)), persistent=False)
        nn.init.normal_(self.code_emb.weight, std=0.05)
        with torch.no_grad():
            self.code_emb.weight[PAD].zero_()

    def encode(self, history: torch.Tensor):
        """history [B, H, L] tokens (items left-padded with 0) -> memory [B, H, D], key bias [B, 1, 1, H]."""
        x = self.code_emb(history).sum(2) + self.hist_pos
        bias = ((history[:, :, 0] == PAD).to(x.dtype) * NEG)[:, None, None, :]
        for blk in self.encoder:
            x = blk(x, bias)
        return self.enc_ln(x), bias

    def decode(self, memory, memory_bias, prefix: torch.Tensor) -> torch.Tensor:
        """prefix [B, W, t] (BOS first): W beams for each of the B histories -> logits [B, W, t, V]."""
        t = prefix.shape[2]
        y = self.code_emb(prefix) + self.dec_pos[:t]
        causal = ((~self.causal[:t, :t]).to(y.dtype) * NEG)[None, None]
        for blk in self.decoder:
            y = blk(y, causal, memory, memory_bias)
        return self.head(self.dec_ln(y))

    def forward(self, history: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """The exported graph: one history [1, H, L], its beams [W, t] -> next-token logits [W, V]."""
        memory, bias = self.encode(history)
        return self.decode(memory, bias, prefix[None])[0, :, -1]


# ---- samples -------------------------------------------------------------------------------------


def history_tokens(ds: Dataset, item_tokens: np.ndarray, starts: np.ndarray, cuts: np.ndarray, H: int) -> np.ndarray:
    """[B, H, L] tokens of the H events before each cut (left-padded; items without a code are padding)."""
    idx = cuts[:, None] - H + np.arange(H)[None, :]
    valid = idx >= starts[:, None]
    items = np.where(valid, ds.items[np.where(valid, idx, 0)], 0)
    return item_tokens[items]


def beam_search(model: GenerativeRetriever, table: CodeTable, history: torch.Tensor, width: int,
                seen: torch.Tensor | None = None):
    """Constrained beam search, batched over users. history [B, H, L]; seen [B, V_items] bool (items
    masked at the last level). Returns item vocab indices [B, width] (-1 = none) and log-probs."""
    B = history.shape[0]
    L = len(table.levels)
    memory, mbias = model.encode(history)
    prefix = torch.full((B, 1, 1), BOS, dtype=torch.long)
    scores = torch.zeros(B, 1)
    flat = torch.zeros(B, 1, dtype=torch.long)
    for level, k in enumerate(table.levels):
        w, t = prefix.shape[1], prefix.shape[2]
        off = table.offsets[level]
        logits = model.decode(memory, mbias, prefix)[:, :, -1, off:off + k]      # [B, w, k]
        valid = torch.from_numpy(table.masks[level])[flat]                       # [B, w, k]
        if level == L - 1 and seen is not None:
            items = torch.from_numpy(table.item_of_path)[flat[..., None] * k + torch.arange(k)]
            valid = valid & ~torch.gather(seen, 1, items.clamp(min=0).reshape(B, -1)).reshape(B, w, k)
        valid = valid & (scores > NEG / 2)[..., None]
        logp = torch.log_softmax(logits.masked_fill(~valid, NEG), -1).masked_fill(~valid, NEG)
        total = (scores[..., None] + logp).reshape(B, w * k)
        top = torch.topk(total, min(width, w * k), dim=1)
        parent, code = top.indices // k, top.indices % k
        scores = top.values
        prefix = torch.cat([torch.gather(prefix, 1, parent[..., None].expand(-1, -1, t)),
                            (code + off)[..., None]], 2)
        flat = torch.gather(flat, 1, parent) * k + code
    items = torch.from_numpy(table.item_of_path)[flat]
    items = torch.where(scores > NEG / 2, items, torch.full_like(items, -1))
    return items, scores


# ---- training ------------------------------------------------------------------------------------


class GenTrainer:
    def __init__(self, cfg: GenConfig, ds: Dataset, split, item_codes: np.ndarray, table: CodeTable):
        self.cfg, self.ds, self.split, self.table = cfg, ds, split, table
        self.rng = np.random.default_rng(cfg.seed)
        self.item_tokens = table.tokens(item_codes)              # [V_items, L]
        self.model = GenerativeRetriever(cfg, table.vocab)
        users, cuts = [], []
        for u in range(ds.num_users):
            s, e = int(ds.offsets[u]), int(split.train_end[u])
            c = np.arange(s + 1, e)
            c = c[self.item_tokens[ds.items[c], 0] != PAD]       # the target must have a code
            users.append(np.full(len(c), u))
            cuts.append(c)
        self.users, self.cuts = np.concatenate(users), np.concatenate(cuts)

    def _order(self) -> np.ndarray:
        if self.cfg.user_cap <= 0:
            return self.rng.permutation(len(self.users))
        keep = []
        bounds = np.searchsorted(self.users, np.arange(self.ds.num_users + 1))
        for u in range(self.ds.num_users):
            a, b = bounds[u], bounds[u + 1]
            idx = np.arange(a, b)
            keep.append(idx if b - a <= self.cfg.user_cap else self.rng.choice(idx, self.cfg.user_cap, replace=False))
        return self.rng.permutation(np.concatenate(keep))

    def loss(self, sel: np.ndarray) -> torch.Tensor:
        u, c = self.users[sel], self.cuts[sel]
        hist = torch.from_numpy(history_tokens(self.ds, self.item_tokens, self.ds.offsets[u], c, self.cfg.max_history))
        target = torch.from_numpy(self.item_tokens[self.ds.items[c]])                       # [B, L]
        prefix = torch.cat([torch.full((len(sel), 1), BOS, dtype=torch.long), target[:, :-1]], 1)
        memory, bias = self.model.encode(hist)
        logits = self.model.decode(memory, bias, prefix[:, None])[:, 0]                    # [B, L, V]
        loss = 0.0
        for level, k in enumerate(self.table.levels):
            off = self.table.offsets[level]
            loss = loss + F.cross_entropy(logits[:, level, off:off + k], target[:, level] - off)
        return loss / len(self.table.levels)

    @torch.no_grad()
    def evaluate(self, which: str, width: int, users: np.ndarray | None = None) -> dict:
        """HR@10/100 and NDCG@10 of beam search for the target at val_pos or test_pos, history before it."""
        self.model.eval()
        pos = self.split.val_pos if which == "val" else self.split.test_pos
        us = np.flatnonzero(pos >= 0) if users is None else users
        hits10 = hits100 = ndcg10 = 0.0
        for a in range(0, len(us), 64):
            u = us[a:a + 64]
            cut = pos[u]
            hist = torch.from_numpy(history_tokens(self.ds, self.item_tokens, self.ds.offsets[u], cut,
                                                   self.cfg.max_history))
            seen = torch.zeros(len(u), self.ds.vocab_size, dtype=torch.bool)
            for r, uu in enumerate(u):
                seen[r, torch.from_numpy(self.ds.items[self.ds.offsets[uu]:cut[r]].copy())] = True
            items, _ = beam_search(self.model, self.table, hist, width, seen)
            target = torch.from_numpy(self.ds.items[cut])[:, None]
            hit = items == target
            rank = torch.where(hit.any(1), hit.float().argmax(1), torch.full((len(u),), 10 ** 6))
            hits10 += float((rank < 10).sum())
            hits100 += float((rank < 100).sum())
            ndcg10 += float(torch.where(rank < 10, 1.0 / torch.log2(rank.float() + 2), torch.zeros(len(u))).sum())
        n = max(len(us), 1)
        return {"hr@10": hits10 / n, "hr@100": hits100 / n, "ndcg@10": ndcg10 / n, "users": int(len(us))}

    def fit(self) -> dict:
        cfg = self.cfg
        model = self.model
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(self._order()) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        t0 = time.monotonic()

        def lr_factor(s: int) -> float:
            progress = s / max(1, total)
            if cfg.time_budget_s:
                progress = max(progress, (time.monotonic() - t0) / cfg.time_budget_s)
            warm = min(1.0, (s + 1) / max(1, cfg.warmup_steps))
            return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        n_params = sum(p.numel() for p in model.parameters())
        log(f"[generative/{cfg.profile}] {n_params:,} parameters, {len(self.users):,} samples, "
            f"{steps_per_epoch} steps/epoch, up to {cfg.epochs} epochs")
        history, best, best_state, bad, step = [], {"val_hr@100": -1.0}, None, 0, 0
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = self._order()
            losses = []
            stop = False
            for a in range(0, len(order), cfg.batch_size):
                loss = self.loss(order[a:a + cfg.batch_size])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                losses.append(loss.item())
                if cfg.time_budget_s and time.monotonic() - t0 > cfg.time_budget_s:
                    stop = True
                    break
            val = self.evaluate("val", cfg.eval_beam)
            rec = {"epoch": epoch, "step": step, "loss": float(np.mean(losses)), "val_hr@10": val["hr@10"],
                   "val_hr@100": val["hr@100"], "seconds": round(time.monotonic() - t0, 1)}
            history.append(rec)
            log(f"[generative] epoch {epoch} loss {rec['loss']:.4f} val HR@10 {val['hr@10']:.4f} "
                f"HR@100 {val['hr@100']:.4f} ({rec['seconds']:.0f}s)")
            if val["hr@100"] > best["val_hr@100"]:
                best = {"val_hr@100": val["hr@100"], "epoch": epoch}
                best_state = copy.deepcopy(model.state_dict())
                bad = 0
            else:
                bad += 1
            if stop or (cfg.patience and bad >= cfg.patience):
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return {"history": history, "best": best, "train_seconds": round(time.monotonic() - t0, 1), "steps": step}


# ---- export --------------------------------------------------------------------------------------


def probe_inputs(model: GenerativeRetriever, seed: int = 0):
    """A full history, a short one and an empty one, and a beam of three prefixes of two tokens."""
    g = np.random.default_rng(seed)
    H, L = model.cfg.max_history, len(model.cfg.levels)
    hist = np.zeros((3, H, L), np.int64)
    for r, n in enumerate([H, max(1, H // 3), 0]):
        if n:
            hist[r, H - n:] = g.integers(FIRST_CODE_TOKEN, model.vocab, size=(n, L))
    prefix = np.full((3, 2), BOS, np.int64)
    prefix[:, 1] = g.integers(FIRST_CODE_TOKEN, model.vocab, size=3)
    return hist, prefix


def export_onnx(model: GenerativeRetriever, path: Path) -> float:
    import io
    import warnings

    import onnx
    import onnxruntime as ort

    model.eval()
    hist, prefix = probe_inputs(model)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(hist[:1]), torch.from_numpy(prefix)), buf,
                          input_names=INPUT_NAMES, output_names=[OUTPUT_NAME],
                          dynamic_axes={"prefix": {0: "beams", 1: "steps"},
                                        OUTPUT_NAME: {0: "beams"}},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path), save_as_external_data=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for r in range(3):                     # batch-1 history broadcast to the beams, as served
            for t in (1, 2):
                ref = model(torch.from_numpy(hist[r:r + 1]), torch.from_numpy(prefix[:, :t])).numpy()
                out = sess.run([OUTPUT_NAME], {"history": hist[r:r + 1], "prefix": prefix[:, :t]})[0]
                worst = max(worst, float(np.abs(out - ref).max()))
    return worst


def _current_dir(store_dir: Path, model: str) -> Path:
    version = store.read_current(store_dir, model)
    if not version:
        raise FileNotFoundError(f"{store_dir}/{model}/CURRENT not found: train `{model}` first")
    return store_dir / model / version


def load_inputs(ds: Dataset, store_dir: Path):
    """Content vectors (the `content` model) and ID embeddings (KuaiFormer), both in vocab order."""
    cdir = _current_dir(store_dir, "content")
    cman = json.loads((cdir / "manifest.json").read_text())
    dim = int(cman["dim"])
    vecs = np.fromfile(cdir / "content.f32", dtype="<f4").reshape(-1, dim)
    ids = (cdir / "item_ids.tsv").read_text().splitlines()[1:]
    row = {line.split("\t")[1]: int(line.split("\t")[0]) for line in ids}
    content = np.zeros((ds.vocab_size, dim), np.float64)
    has_content = np.zeros(ds.vocab_size, bool)
    for i, item in enumerate(ds.item_ids):
        r = row.get(item)
        if r is not None:
            content[i + FIRST_ITEM_IDX] = vecs[r]
            has_content[i + FIRST_ITEM_IDX] = True
    kdir = _current_dir(store_dir, "kuaiformer")
    kman = json.loads((kdir / "manifest.json").read_text())
    kd = int(kman["embedding_dim"])
    kvocab = {line.split("\t")[1]: int(line.split("\t")[0])
              for line in (kdir / "item_vocab.tsv").read_text().splitlines()[1:]}
    table = np.fromfile(kdir / "item_embeddings.f32", dtype="<f4").reshape(-1, kd)
    id_emb = np.zeros((ds.vocab_size, kd), np.float64)
    for i, item in enumerate(ds.item_ids):
        r = kvocab.get(item)
        if r is not None:
            id_emb[i + FIRST_ITEM_IDX] = table[r]
    return content, has_content, id_emb, {"content": cdir.name, "kuaiformer": kdir.name,
                                          "content_encoder": cman.get("encoder")}


def run(cfg: GenConfig, data_dir: str | Path, store_dir: str | Path) -> dict:
    t_start = time.monotonic()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    data_dir, store_dir = Path(data_dir), Path(store_dir)
    ds = load_dataset(data_dir)
    split = per_user_split(ds)
    content, has_content, id_emb, sources = load_inputs(ds, store_dir)
    counts = item_counts(ds, split)
    warm = (counts > 0) & has_content
    warm[:FIRST_ITEM_IDX] = False
    rng = np.random.default_rng(cfg.seed)
    # codes for the catalogue items with a content vector (rows 0, 1 are padding / OOV)
    rows = np.flatnonzero(has_content)
    q, codes_rows, stats = build_semantic_ids(cfg, content[rows], id_emb[rows], warm[rows], counts[rows], rng)
    codes = np.full((ds.vocab_size, len(cfg.levels)), -1, np.int64)
    codes[rows] = codes_rows
    table = CodeTable(cfg.levels, codes)
    log(f"[generative] semantic IDs: {stats['items']} items on {stats['code_paths']} code paths "
        f"({stats['unique_paths_share']:.1%} alone on theirs, largest group {stats['largest_collision_group']}, "
        f"{stats['items_without_code']} past the collision level)")

    trainer = GenTrainer(cfg, ds, split, codes, table)
    result = trainer.fit()
    model = trainer.model
    test = trainer.evaluate("test", cfg.eval_beam)
    val = result["history"][result["best"]["epoch"] - 1] if result["history"] else {}
    log(f"[generative] best epoch {result['best'].get('epoch')}: test HR@10 {test['hr@10']:.4f} "
        f"HR@100 {test['hr@100']:.4f} ({result['train_seconds']:.0f}s training)")

    # probe users: the serving channel's tests reproduce these top items from the same histories
    probe_users = np.flatnonzero(split.test_pos >= 0)[: cfg.probe_users]
    cut = split.test_pos[probe_users]
    hist = torch.from_numpy(history_tokens(ds, trainer.item_tokens, ds.offsets[probe_users], cut, cfg.max_history))
    windows = [ds.items[max(int(ds.offsets[u]), int(cut[r]) - cfg.max_history):int(cut[r])]
               for r, u in enumerate(probe_users)]
    seen = torch.zeros(len(probe_users), ds.vocab_size, dtype=torch.bool)
    for r, events in enumerate(windows):
        seen[r, torch.from_numpy(events.copy())] = True        # the serving channel masks what it is given
    with torch.no_grad():
        top, top_scores = beam_search(model, table, hist, 20, seen)
    probes = []
    for r, events in enumerate(windows):
        probes.append({"history": [ds.item_ids[i - FIRST_ITEM_IDX] for i in events],
                       "top": [ds.item_ids[i - FIRST_ITEM_IDX] for i in top[r].tolist() if i >= 0],
                       "log_probs": [round(float(s), 5) for s in top_scores[r].tolist() if s > NEG / 2]})

    # items without training events: their codes come from content alone, as at serving for new items
    cold = [i for i in rows if not warm[i]][:20]
    cold_codes = q.assign(q.from_content(content[cold])) if cold else np.zeros((0, len(cfg.codebook_sizes)))
    quantiser_probes = [{"item_id": ds.item_ids[i - FIRST_ITEM_IDX], "codes": [int(c) for c in cc]}
                        for i, cc in zip(cold, cold_codes)]

    version = store.unique_version_name(store_dir, "generative", cfg.profile)
    staged = store.staging_dir(store_dir, "generative", version)
    try:
        parity = export_onnx(model, staged / "model.onnx")
        log(f"[generative] ONNX parity max |onnxruntime - torch| = {parity:.2e}")
        if not parity <= PARITY_TOLERANCE:
            raise RuntimeError(f"ONNX parity {parity} exceeds {PARITY_TOLERANCE}")
        lines = ["item_id\t" + "\t".join(f"c{i + 1}" for i in range(len(cfg.levels)))]
        for i in np.flatnonzero(codes[:, 0] >= 0):
            lines.append(ds.item_ids[i - FIRST_ITEM_IDX] + "\t" + "\t".join(str(int(c)) for c in codes[i]))
        (staged / "codes.tsv").write_text("\n".join(lines) + "\n")
        np.concatenate([q.mean[None, :], q.pca, q.ridge]).astype("<f4").tofile(staged / "projection.f32")
        np.concatenate(q.codebooks).astype("<f4").tofile(staged / "codebooks.f32")
        torch.save(model.state_dict(), staged / "weights.pt")
        D = content.shape[1]
        manifest = {
            "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "signature": {
                "inputs": [{"name": "history", "dtype": "int64", "shape": [1, cfg.max_history, len(cfg.levels)]},
                           {"name": "prefix", "dtype": "int64", "shape": ["beams", "steps"]}],
                "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["beams", table.vocab]}],
            },
            "levels": cfg.levels,
            "token_offsets": table.offsets,
            "vocab_size": table.vocab,
            "padding_token": PAD,
            "bos_token": BOS,
            "max_history": cfg.max_history,
            "codes": {"file": "codes.tsv", "items": int((codes[:, 0] >= 0).sum()), **stats},
            "quantiser": {
                "projection": {"file": "projection.f32", "dtype": "float32", "byte_order": "little",
                               "rows": {"mean": 1, "pca": int(q.pca.shape[0]), "ridge": int(q.ridge.shape[0])},
                               "content_dim": int(D)},
                "codebooks": {"file": "codebooks.f32", "dtype": "float32", "byte_order": "little",
                              "shape": [int(sum(cfg.codebook_sizes)), int(q.codebooks[0].shape[1])]},
                "content_weight": cfg.content_weight,
                "space": "[w * unit(PCA(content - mean)) ; unit(ID embedding)]; an item without training "
                         "events (and every item upserted at serving) uses unit(ridge(content - mean))",
            },
            "content_encoder": sources.get("content_encoder"),
            "inputs_from": {"content": sources["content"], "kuaiformer": sources["kuaiformer"]},
            "data": {"dir": str(data_dir), "name": ds.manifest.get("name", data_dir.name),
                     "num_interactions": ds.num_interactions, "num_users": ds.num_users,
                     "split": "per-user last-1 holdout"},
            "config": asdict(cfg),
            "metrics": {"val_hr@10": val.get("val_hr@10"), "val_hr@100": val.get("val_hr@100"),
                        "test_hr@10": test["hr@10"], "test_hr@100": test["hr@100"], "test_ndcg@10": test["ndcg@10"],
                        "eval_users": test["users"], "beam": cfg.eval_beam,
                        "train_seconds": result["train_seconds"], "best_epoch": result["best"].get("epoch"),
                        "steps": result["steps"], "history": result["history"]},
            "probes": probes,
            "quantiser_probes": quantiser_probes,
            "onnx_parity_max_abs_diff": parity,
            "trainer_version": __import__("recsys_trainer").__version__,
            "torch_version": torch.__version__,
        }
        final = store.publish(store_dir, "generative", version, staged, manifest)
    except BaseException:
        import shutil
        shutil.rmtree(staged, ignore_errors=True)
        raise
    log(f"[generative] wrote {final} (CURRENT -> {version}) in {time.monotonic() - t_start:.0f}s total")
    return {"version": version, "test_hr@10": test["hr@10"], "test_hr@100": test["hr@100"],
            "onnx_parity_max_abs_diff": parity, "train_seconds": result["train_seconds"]}
