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


def decode_step(m: GenerativeRetriever, token: torch.Tensor, pos: torch.Tensor, past_k, past_v,
                memory_k: torch.Tensor, memory_v: torch.Tensor, memory_bias: torch.Tensor):
    """One decoder step of W beams with cached keys/values (the served search): token [W] at position
    pos [1], past_k/past_v [NL, W, heads, t, dh] of the earlier positions (None at BOS), the history's
    cross-attention keys/values [NL, 1, heads, H, dh] -> logits [W, V] and the keys/values including
    this position [NL, W, heads, t + 1, dh]. The same arithmetic as decode() for the last position."""
    y = m.code_emb(token) + m.dec_pos.index_select(0, pos)                   # [W, D]
    W, D = y.shape
    heads = m.decoder[0].heads
    dh = D // heads
    scale = float(dh) ** -0.5
    ks, vs = [], []
    for layer, blk in enumerate(m.decoder):
        q, k, v = (x.reshape(W, heads, 1, dh) for x in blk.self_qkv(blk.ln1(y)).chunk(3, dim=-1))
        if past_k is not None:
            k, v = torch.cat([past_k[layer], k], 2), torch.cat([past_v[layer], v], 2)   # [W, heads, t+1, dh]
        ks.append(k)
        vs.append(v)
        # one query per beam: products and sums, not W x heads matrix products of one row each
        att = torch.softmax((q * k).sum(-1) * scale, dim=-1)                    # [W, heads, t+1]
        y = y + blk.self_out((att[..., None] * v).sum(2).reshape(W, D))
        # cross-attention: the beams are the query rows of one matrix product per head
        cq = blk.q(blk.ln2(y)).reshape(W, heads, dh).transpose(0, 1)[None]      # [1, heads, W, dh]
        catt = torch.softmax(torch.matmul(cq, memory_k[layer].transpose(-1, -2)) * scale + memory_bias, dim=-1)
        c = torch.matmul(catt, memory_v[layer])[0].transpose(0, 1).reshape(W, D)
        y = y + blk.cross_out(c)
        y = y + blk.ffn(blk.ln3(y))
    return m.head(m.dec_ln(y)), torch.stack(ks), torch.stack(vs)


class EncoderGraph(nn.Module):
    """encoder.onnx: the history, once per request -> the BOS step's logits [1, V] and keys/values,
    and the cross-attention keys/values of every decoder layer and the history mask for the steps."""

    def __init__(self, model: GenerativeRetriever):
        super().__init__()
        self.m = model

    def forward(self, history: torch.Tensor):
        m = self.m
        memory, bias = m.encode(history)
        mk, mv = zip(*((m.decoder[0]._heads(k), m.decoder[0]._heads(v))
                       for k, v in (blk.kv(memory).chunk(2, dim=-1) for blk in m.decoder)))
        mk, mv = torch.stack(mk), torch.stack(mv)
        bos = torch.full((1,), BOS, dtype=torch.long)
        logits, pk, pv = decode_step(m, bos, torch.zeros(1, dtype=torch.long), None, None, mk, mv, bias)
        return logits, pk, pv, mk, mv, bias


class StepGraph(nn.Module):
    """step.onnx: one level of the beam search. Beam w continues beam parent[w] of the previous
    level (its cached keys/values) with token[w] at position step."""

    def __init__(self, model: GenerativeRetriever):
        super().__init__()
        self.m = model

    def forward(self, token, parent, step, past_k, past_v, memory_k, memory_v, memory_bias):
        return decode_step(self.m, token, step, past_k.index_select(1, parent), past_v.index_select(1, parent),
                           memory_k, memory_v, memory_bias)


ENCODER_OUTPUTS = ["logits", "past_k", "past_v", "memory_k", "memory_v", "memory_bias"]
STEP_INPUTS = ["token", "parent", "step", "past_k", "past_v", "memory_k", "memory_v", "memory_bias"]
STEP_OUTPUTS = ["logits", "present_k", "present_v"]


def probe_inputs(model: GenerativeRetriever, seed: int = 0):
    """A full history, a short one and an empty one, and three beams of three tokens (BOS first)."""
    g = np.random.default_rng(seed)
    H, L = model.cfg.max_history, len(model.cfg.levels)
    hist = np.zeros((3, H, L), np.int64)
    for r, n in enumerate([H, max(1, H // 3), 0]):
        if n:
            hist[r, H - n:] = g.integers(FIRST_CODE_TOKEN, model.vocab, size=(n, L))
    prefix = np.full((3, 3), BOS, np.int64)
    prefix[:, 1:] = g.integers(FIRST_CODE_TOKEN, model.vocab, size=(3, 2))
    return hist, prefix


def export_onnx(model: GenerativeRetriever, out_dir: Path) -> float:
    """Writes encoder.onnx and step.onnx; returns the largest |onnxruntime - torch| over the probes,
    the steps checked against the full decoder for the same prefixes (beams reordered on the way)."""
    import io
    import warnings

    import onnx
    import onnxruntime as ort

    model.eval()
    hist, prefix = probe_inputs(model)
    H = hist.shape[1]

    def save(module: nn.Module, args: tuple, name: str, inputs: list[str], outputs: list[str], axes: dict) -> None:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        proto = onnx.load_from_string(buf.getvalue())
        onnx.checker.check_model(proto)
        onnx.save(proto, str(out_dir / name), save_as_external_data=False)

    enc = EncoderGraph(model).eval()
    step = StepGraph(model).eval()
    with torch.no_grad():
        _, pk, pv, mk, mv, mb = enc(torch.from_numpy(hist[:1]))
        save(enc, (torch.from_numpy(hist[:1]),), "encoder.onnx", ["history"], ENCODER_OUTPUTS, {})
        token, parent, pos = torch.from_numpy(prefix[:, 1]), torch.zeros(3, dtype=torch.long), torch.ones(1, dtype=torch.long)
        save(step, (token, parent, pos, pk, pv, mk, mv, mb), "step.onnx", STEP_INPUTS, STEP_OUTPUTS,
             {"token": {0: "beams"}, "parent": {0: "beams"}, "past_k": {1: "previous_beams", 3: "steps"},
              "past_v": {1: "previous_beams", 3: "steps"}, "logits": {0: "beams"},
              "present_k": {1: "beams", 3: "steps_and_this"}, "present_v": {1: "beams", 3: "steps_and_this"}})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess_enc = ort.InferenceSession(str(out_dir / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    sess_step = ort.InferenceSession(str(out_dir / "step.onnx"), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    order = np.array([2, 0, 1])                # the third level continues the beams in another order
    with torch.no_grad():
        for r in range(3):
            h = torch.from_numpy(hist[r:r + 1])
            logits, pk, pv, mk, mv, mb = sess_enc.run(ENCODER_OUTPUTS, {"history": hist[r:r + 1]})
            ref = model(h, torch.from_numpy(prefix[:1, :1])).numpy()
            worst = max(worst, float(np.abs(logits - ref).max()))
            feeds = {"memory_k": mk, "memory_v": mv, "memory_bias": mb}
            logits, pk, pv = sess_step.run(STEP_OUTPUTS, {**feeds, "token": prefix[:, 1], "parent": np.zeros(3, np.int64),
                                                          "step": np.array([1]), "past_k": pk, "past_v": pv})
            ref = model(h, torch.from_numpy(prefix[:, :2])).numpy()
            worst = max(worst, float(np.abs(logits - ref).max()))
            logits, _, _ = sess_step.run(STEP_OUTPUTS, {**feeds, "token": prefix[:, 2], "parent": order,
                                                        "step": np.array([2]), "past_k": pk, "past_v": pv})
            reordered = np.concatenate([prefix[order, :2], prefix[:, 2:3]], 1)
            ref = model(h, torch.from_numpy(reordered)).numpy()
            worst = max(worst, float(np.abs(logits - ref).max()))
    assert H == model.cfg.max_history
    return worst


def graph_signature(cfg: GenConfig, vocab: int) -> dict:
    """The two graphs' inputs and outputs: NL decoder layers, heads, dh = dim / heads."""
    NL, h, dh, H = cfg.decoder_layers, cfg.heads, cfg.dim // cfg.heads, cfg.max_history
    kv = lambda name, beams, steps: {"name": name, "dtype": "float32", "shape": [NL, beams, h, steps, dh]}  # noqa: E731
    memory = [{"name": "memory_k", "dtype": "float32", "shape": [NL, 1, h, H, dh]},
              {"name": "memory_v", "dtype": "float32", "shape": [NL, 1, h, H, dh]},
              {"name": "memory_bias", "dtype": "float32", "shape": [1, 1, 1, H]}]
    return {
        "encoder": {"file": "encoder.onnx",
                    "inputs": [{"name": "history", "dtype": "int64", "shape": [1, H, len(cfg.levels)]}],
                    "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, vocab]},
                                kv("past_k", 1, 1), kv("past_v", 1, 1), *memory]},
        "step": {"file": "step.onnx",
                 "inputs": [{"name": "token", "dtype": "int64", "shape": ["beams"]},
                            {"name": "parent", "dtype": "int64", "shape": ["beams"]},
                            {"name": "step", "dtype": "int64", "shape": [1]},
                            kv("past_k", "previous_beams", "steps"), kv("past_v", "previous_beams", "steps"), *memory],
                 "outputs": [{"name": "logits", "dtype": "float32", "shape": ["beams", vocab]},
                             kv("present_k", "beams", "steps + 1"), kv("present_v", "beams", "steps + 1")]},
    }


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
        parity = export_onnx(model, staged)
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
            "signature": graph_signature(cfg, table.vocab),
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
