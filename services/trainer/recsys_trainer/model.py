"""KuaiFormer-style multi-interest user encoder (arXiv 2411.10057; docs/models.md).

Token per past event = LN(x + MLP(x)), x = item-ID emb + rating-bucket emb + gap-bucket emb
+ mean genre emb (+ release-year emb).
The oldest events are compressed group-wise (1-layer bidirectional encoder + mean),
the newest `raw_len` stay raw, K learnable query tokens are appended, and a causal
pre-LN Transformer reads the lot. The K query outputs, L2-normalised, are the
user's interests. The single-interest baseline ("sasrec") is this class with
num_interests=1 and no compression groups.

Attention is written out with an additive finite mask (no -inf), so fully padded
rows stay finite and the graph exports to plain ONNX ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import buckets

NEG = -1e9


@dataclass
class ModelConfig:
    vocab_size: int
    max_seq_len: int = 256
    raw_len: int = 48
    compress_groups: list[int] = field(default_factory=lambda: [64, 64, 16, 16, 16, 16, 16])
    dim: int = 64
    layers: int = 2
    heads: int = 2
    ffn_mult: int = 4
    num_interests: int = 4
    dropout: float = 0.2
    attn_dropout: float = 0.0
    num_genres: int = 20
    num_years: int = 0               # release-year buckets (0 = no year feature)

    def __post_init__(self):
        if sum(self.compress_groups) + self.raw_len != self.max_seq_len:
            raise ValueError(
                f"compress_groups {self.compress_groups} + raw_len {self.raw_len} must add up to "
                f"max_seq_len {self.max_seq_len}")
        if self.dim % self.heads:
            raise ValueError("dim must be divisible by heads")

    @property
    def num_tokens(self) -> int:
        return len(self.compress_groups) + self.raw_len + self.num_interests


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # x [B, T, D]; bias [B, 1, T, T] additive (0 or NEG)
        b, t, d = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.matmul(q, k.transpose(-1, -2)) * (float(d // h) ** -0.5) + bias
        att = self.drop(torch.softmax(att, dim=-1))
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        return self.out(y)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_mult: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, attn_dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), bias))
        return x + self.drop(self.ffn(self.ln2(x)))


class KuaiFormer(nn.Module):
    def __init__(self, cfg: ModelConfig, item_genres: torch.Tensor, item_years: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.item_emb = nn.Embedding(cfg.vocab_size, d, padding_idx=0)
        self.rating_emb = nn.Embedding(buckets.NUM_RATING_BUCKETS, d, padding_idx=0)
        self.gap_emb = nn.Embedding(buckets.NUM_GAP_BUCKETS, d, padding_idx=0)
        self.genre_emb = nn.Embedding(cfg.num_genres + 1, d, padding_idx=0)
        # item -> genres as a row-normalised multi-hot matrix [V, G+1] (column 0 unused): a constant
        # of the model, exported into the ONNX graph. genre mean of item i = row i @ genre_emb.
        g = item_genres.long()
        multi_hot = torch.zeros(cfg.vocab_size, cfg.num_genres + 1)
        multi_hot.scatter_(1, g, 1.0)
        multi_hot[:, 0] = 0.0
        multi_hot = multi_hot / multi_hot.sum(1, keepdim=True).clamp(min=1.0)
        self.register_buffer("item_genre_weights", multi_hot, persistent=True)
        if cfg.num_years:
            self.year_emb = nn.Embedding(cfg.num_years, d, padding_idx=0)
            years = item_years.long().clone() if item_years is not None else torch.zeros(cfg.vocab_size, dtype=torch.long)
            self.register_buffer("item_years", years, persistent=True)
        self.token_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.token_ln = nn.LayerNorm(d)
        self.emb_drop = nn.Dropout(cfg.dropout)

        self.groups = list(cfg.compress_groups)
        if self.groups:
            # no dropout inside: CPU dropout over every raw position costs more than the whole encoder
            self.compressor = Block(d, cfg.heads, cfg.ffn_mult, 0.0, 0.0)
            self.group_pos = nn.Parameter(torch.zeros(max(self.groups), d))
        self.queries = nn.Parameter(torch.randn(cfg.num_interests, d) * 0.02)
        self.pos_emb = nn.Parameter(torch.randn(cfg.num_tokens, d) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.ffn_mult, cfg.dropout, cfg.attn_dropout) for _ in range(cfg.layers))
        self.final_ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, d)
        self.seq_head = nn.Linear(d, d)     # dense auxiliary loss only; not part of the exported graph
        # output (candidate) side: item-ID embedding (tied with the input table) + side info, projected
        self.out_proj = nn.Linear(d, d)
        self.register_buffer("causal", torch.tril(torch.ones(cfg.num_tokens, cfg.num_tokens, dtype=torch.bool)),
                             persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        for emb in (self.item_emb, self.rating_emb, self.gap_emb, self.genre_emb, getattr(self, "year_emb", None)):
            if emb is None:
                continue
            nn.init.normal_(emb.weight, std=0.05)
            with torch.no_grad():
                emb.weight[0].zero_()

    # ---- item side -------------------------------------------------------------------------

    def genre_table(self) -> torch.Tensor:
        return self.item_genre_weights @ self.genre_emb.weight      # [V, D]

    def genre_mean(self, idx: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        return F.embedding(idx, self.genre_table() if table is None else table)

    def side(self, idx: torch.Tensor) -> torch.Tensor:
        """Item side information: mean genre embedding (+ release-year embedding)."""
        s = self.genre_mean(idx)
        if self.cfg.num_years:
            s = s + self.year_emb(self.item_years[idx])
        return s

    def item_vectors(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised candidate embeddings of vocab indices (all of them when idx is None)."""
        if idx is None:
            idx = torch.arange(self.cfg.vocab_size, device=self.item_emb.weight.device)
        v = self.out_proj(self.item_emb(idx) + self.side(idx))
        return F.normalize(v, dim=-1)

    # ---- user side -------------------------------------------------------------------------

    def tokens(self, item_idx, rating_bucket, gap_bucket):
        x = self.item_emb(item_idx) + self.rating_emb(rating_bucket) + self.gap_emb(gap_bucket) \
            + self.side(item_idx)
        return self.token_ln(x + self.token_mlp(x))

    def compress(self, item_idx, rating_bucket, gap_bucket):
        """Compress the oldest sum(groups) positions group by group: 1-layer bidirectional
        encoder + mean over the group's non-padding positions. Returns ([B, n_groups, D], pad [B, n_groups]).

        In training mode, leading groups that are padding in every row of the batch are skipped
        (their result is a masked zero token either way); export and evaluation run in eval
        mode and always compute every group, so the ONNX graph has no data-dependent branch.
        """
        b = item_idx.shape[0]
        d = self.cfg.dim
        outs, pads = [], []
        start = 0
        i = 0
        while i < len(self.groups):      # groups of the same size are batched together
            g = self.groups[i]
            j = i
            while j < len(self.groups) and self.groups[j] == g:
                j += 1
            n = j - i
            end = start + n * g
            skip = 0
            if self.training:
                used = (item_idx[:, start:end] != 0).any(0).reshape(n, g).any(1)
                skip = n if not bool(used.any()) else int(used.to(torch.int64).argmax())
            if skip:
                outs.append(torch.zeros(b, skip, d, dtype=self.pos_emb.dtype, device=item_idx.device))
                pads.append(torch.ones(b, skip, dtype=torch.bool, device=item_idx.device))
            if skip < n:
                s0, m = start + skip * g, n - skip
                sl = slice(s0, end)
                t = self.tokens(item_idx[:, sl], rating_bucket[:, sl], gap_bucket[:, sl])
                t = t.reshape(b * m, g, d) + self.group_pos[:g]
                p = (item_idx[:, sl] == 0).reshape(b * m, g)
                bias = (p.to(t.dtype) * NEG)[:, None, None, :]          # keys only: bidirectional
                h = self.compressor(t, bias)
                keep = (~p).to(h.dtype)[..., None]
                mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
                outs.append(mean.reshape(b, m, d))
                pads.append(p.all(-1).reshape(b, m))
            start = end
            i = j
        return torch.cat(outs, 1), torch.cat(pads, 1)

    def forward(self, item_idx: torch.Tensor, rating_bucket: torch.Tensor, gap_bucket: torch.Tensor,
                return_sequence: bool = False):
        """[B, L] int64 x3 (left-padded) -> interests [B, K, D], L2-normalised.

        return_sequence (training only) also returns the causal outputs at the raw positions,
        [B, raw_len, D] normalised, for the dense next-item loss (PinnerFormer's all-action idea)."""
        b = item_idx.shape[0]
        if self.groups:
            n_old = sum(self.groups)
            ctok, cpad = self.compress(item_idx[:, :n_old], rating_bucket[:, :n_old], gap_bucket[:, :n_old])
            rtok = self.tokens(item_idx[:, n_old:], rating_bucket[:, n_old:], gap_bucket[:, n_old:])
            seq = torch.cat([ctok, rtok], 1)
            spad = torch.cat([cpad, item_idx[:, n_old:] == 0], 1)
        else:
            seq, spad = self.tokens(item_idx, rating_bucket, gap_bucket), item_idx == 0
        k = self.cfg.num_interests
        q = self.queries.unsqueeze(0).expand(b, -1, -1)
        x = torch.cat([self.emb_drop(seq), q], 1) + self.pos_emb
        qpad = torch.zeros(b, k, dtype=torch.bool, device=x.device)
        key_ok = ~torch.cat([spad, qpad], 1)                        # [B, T]
        allowed = self.causal[None, :, :] & key_ok[:, None, :]     # [B, T, T]
        bias = ((~allowed).to(x.dtype) * NEG)[:, None]              # [B, 1, T, T]
        for blk in self.blocks:
            x = blk(x, bias)
        u = F.normalize(self.head(self.final_ln(x[:, -k:])), dim=-1)
        if return_sequence:
            n_groups = len(self.groups)
            s = self.seq_head(self.final_ln(x[:, n_groups:n_groups + self.cfg.raw_len]))
            return u, F.normalize(s, dim=-1)
        return u
