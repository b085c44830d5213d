"""The ranking models (docs/ranking.md; the EM3 notes in MODELS.md).

EM3Rank: ID embeddings (user, item, genres, year) and trainable content modules:
- Fusion-Q-Former: `num_queries` trainable query tokens cross-attend over an
  item's modality tokens (the frozen all-MiniLM-L6-v2 text vector, projected;
  a metadata token from its genres and release year) and are merged into one
  content embedding. Items without a text vector mask that token out.
- User content-interest: the target's content embedding attends over the
  content embeddings of the user's history; the read-out is crossed with it.
- Content-ID contrastive (CIC) loss: InfoNCE between each in-batch item's
  content embedding and its ID embedding (`cic_weight`, 0 switches it off).
- Feature crossing into an MMoE (shared experts, one gate and tower per task:
  click, like).

`use_id` / `use_content` give the ablations (ID-only, content-only, both).

Serving layout (one ONNX run per request): the user side has batch 1 and is
broadcast over the N candidates; nothing is computed per (candidate, candidate).

Both read `cand_recall` [N, R]: what recall says about each candidate (its recall
score and one 0/1 column per channel), as an embedding crossed into the MMoE and a
wide term on each logit (EM3), or an additive MLP term (prerank).

TwoTowerPrerank: user tower (user ID + mean of the history's item IDs) and item
tower (item ID, genres, year, text vector); score = <u, v> + f(recall features).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RankModelConfig:
    num_users: int = 2
    num_items: int = 2
    num_genres: int = 1          # genre vocab size incl. 0 = none
    num_years: int = 1
    content_dim: int = 384
    dim: int = 32
    num_queries: int = 2
    heads: int = 2
    experts: int = 3
    expert_hidden: int = 128
    expert_out: int = 64
    tower_hidden: int = 32
    dropout: float = 0.1
    use_id: bool = True
    use_content: bool = True
    recall_dim: int = 1          # R of the cand_recall input [N, R] (recall score, one column per channel)

    def to_dict(self) -> dict:
        return asdict(self)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where mask is True; all-masked rows give zeros (not NaN)."""
    scores = scores.masked_fill(~mask, -1e9)
    w = torch.softmax(scores, dim=-1)
    return w * mask.to(w.dtype)


class ItemFeatures(nn.Module):
    """Genre (mean of non-padding genres) and year embeddings."""

    def __init__(self, cfg: RankModelConfig):
        super().__init__()
        self.genre = nn.Embedding(cfg.num_genres, cfg.dim, padding_idx=0)
        self.year = nn.Embedding(cfg.num_years, cfg.dim)

    def forward(self, genres: torch.Tensor, year: torch.Tensor):
        present = (genres > 0).to(torch.float32).unsqueeze(-1)
        g = (self.genre(genres) * present).sum(-2) / present.sum(-2).clamp(min=1.0)
        return g, self.year(year)


class FusionQFormer(nn.Module):
    """Trainable query tokens cross-attending over an item's modality tokens."""

    def __init__(self, cfg: RankModelConfig):
        super().__init__()
        d, self.h = cfg.dim, cfg.heads
        self.text = nn.Sequential(nn.Linear(cfg.content_dim, d), nn.LayerNorm(d))
        self.meta = nn.Linear(2 * d, d)
        self.modality = nn.Parameter(torch.randn(2, d) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, d) * 0.02)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm2 = nn.LayerNorm(d)
        self.out = nn.Linear(cfg.num_queries * d, d)

    def forward(self, content: torch.Tensor, has_content: torch.Tensor, genre_e: torch.Tensor,
                year_e: torch.Tensor) -> torch.Tensor:
        """content [..., C], has_content [...], genre_e/year_e [..., d] -> [..., d]."""
        lead = content.shape[:-1]
        d = genre_e.shape[-1]
        text_tok = self.text(content) + self.modality[0]
        meta_tok = self.meta(torch.cat([genre_e, year_e], -1)) + self.modality[1]
        tokens = torch.stack([text_tok, meta_tok], -2).reshape(-1, 2, d)           # [M, 2, d]
        mask = torch.stack([has_content > 0, torch.ones_like(has_content, dtype=torch.bool)], -1)
        mask = mask.reshape(-1, 1, 1, 2)                                             # [M, 1, 1, 2]
        M, Q, H, hd = tokens.shape[0], self.queries.shape[0], self.h, d // self.h
        q = self.q(self.queries).reshape(1, Q, H, hd).transpose(1, 2)                # [1, H, Q, hd]
        k = self.k(tokens).reshape(M, 2, H, hd).transpose(1, 2)                      # [M, H, 2, hd]
        v = self.v(tokens).reshape(M, 2, H, hd).transpose(1, 2)
        att = _masked_softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd), mask)  # [M, H, Q, 2]
        x = torch.matmul(att, v).transpose(1, 2).reshape(M, Q, d)
        x = self.norm1(self.queries.unsqueeze(0) + self.o(x))
        x = self.norm2(x + self.ffn(x))
        return self.out(x.reshape(M, Q * d)).reshape(*lead, d)


class TargetAttention(nn.Module):
    """Attention from each candidate's vector [N, d] over the user's history [1, L, d] (mask [1, L])."""

    def __init__(self, d: int):
        super().__init__()
        self.w = nn.Linear(d, d, bias=False)
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, target: torch.Tensor, hist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # target [B, d] with hist [B or 1, L, d]: per-row scores [B, L]
        keys = self.w(hist)
        scores = (target.unsqueeze(1) * keys).sum(-1) * self.scale
        w = _masked_softmax(scores, mask.expand(scores.shape[0], -1))
        return (w.unsqueeze(-1) * hist).sum(1)


class MMoE(nn.Module):
    def __init__(self, in_dim: int, cfg: RankModelConfig, tasks: int):
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, cfg.expert_hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                          nn.Linear(cfg.expert_hidden, cfg.expert_out), nn.ReLU())
            for _ in range(cfg.experts))
        self.gates = nn.ModuleList(nn.Linear(in_dim, cfg.experts) for _ in range(tasks))
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(cfg.expert_out, cfg.tower_hidden), nn.ReLU(), nn.Linear(cfg.tower_hidden, 1))
            for _ in range(tasks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        e = torch.stack([m(x) for m in self.experts], 1)                    # [N, E, o]
        out = []
        for gate, tower in zip(self.gates, self.towers):
            w = torch.softmax(gate(x), -1).unsqueeze(-1)                   # [N, E, 1]
            out.append(tower((w * e).sum(1)).squeeze(-1))                  # [N] logits
        return out


class EM3Rank(nn.Module):
    TASKS = ("click", "like")

    def __init__(self, cfg: RankModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.item_feat = ItemFeatures(cfg)
        n_feat = 0
        if cfg.use_id:
            self.user = nn.Embedding(cfg.num_users, d)
            self.item = nn.Embedding(cfg.num_items, d, padding_idx=0)
            self.id_attention = TargetAttention(d)
            n_feat += 7           # user, item, genre, year, attended history, history mean, item x attended
        if cfg.use_content:
            self.fusion = FusionQFormer(cfg)
            self.content_attention = TargetAttention(d)
            self.cic_content = nn.Linear(d, d)
            self.cic_id = nn.Linear(d, d)
            n_feat += 3           # content, user content interest, their product
        # What recall says about the candidate (its score and channels): an embedding crossed like the
        # others, and a wide term on each task's logit.
        self.recall = nn.Sequential(nn.Linear(cfg.recall_dim, d), nn.ReLU(), nn.Linear(d, d))
        self.recall_wide = nn.Linear(cfg.recall_dim, len(self.TASKS))
        n_feat += 1
        self.mmoe = MMoE(n_feat * d, cfg, len(self.TASKS))

    def content_embedding(self, content, has_content, genres, year):
        g, y = self.item_feat(genres, year)
        return self.fusion(content, has_content, g, y)

    def logits(self, user_idx, hist_item_idx, hist_genres, hist_year, hist_content, cand_item_idx,
               cand_genres, cand_year, cand_content, cand_has_content, cand_recall,
               ctx: torch.Tensor | None = None, hist_unique: tuple | None = None):
        """User side [U, ...] and candidates [N, ...]. Serving: U = 1, broadcast over the candidates.
        Training: `ctx` [N] names each candidate's user row, so a user side is computed once per
        context however many samples share it. Returns (click logits, like logits, candidate
        content embedding or None, candidate ID embedding or None). Training may pass `hist_unique`
        = (content, has_content, genres, year, inverse [U, L]) of the distinct history items, so each
        item's content embedding is computed once per batch (same result, fewer FLOPs)."""
        c_t = c_h = None
        if self.cfg.use_content:
            c_t = self.content_embedding(cand_content, cand_has_content, cand_genres, cand_year)
            if hist_unique is not None:
                *uq, inverse = hist_unique
                c_h = self.content_embedding(*uq)[inverse]                      # [U, L, d]
            else:
                hist_has = (hist_content.abs().sum(-1) > 0).to(torch.float32)
                c_h = self.content_embedding(hist_content, hist_has, hist_genres, hist_year)   # [U, L, d]
        return self.logits_from_content(user_idx, hist_item_idx, c_h, cand_item_idx, cand_genres, cand_year, c_t,
                                        cand_recall, ctx)

    def logits_from_content(self, user_idx, hist_item_idx, hist_content_emb, cand_item_idx, cand_genres, cand_year,
                            cand_content_emb, cand_recall, ctx: torch.Tensor | None = None):
        """`logits` after the content embeddings: those of the history [U, L, d] and the candidates [N, d]
        (content_embedding, which depends on the item alone; serving computes it once per item)."""
        def per_cand(t: torch.Tensor) -> torch.Tensor:
            return t if ctx is None else t[ctx]

        mask = per_cand(hist_item_idx > 0)                                  # [N|1, L]
        n = cand_item_idx.shape[0]
        feats = []
        c_t, e_t = cand_content_emb, None
        if self.cfg.use_id:
            g, y = self.item_feat(cand_genres, cand_year)
            e_t = self.item(cand_item_idx)
            hist_e = self.item(hist_item_idx)                               # [U, L, d]
            m = (hist_item_idx > 0).to(torch.float32).unsqueeze(-1)
            mean = (hist_e * m).sum(1) / m.sum(1).clamp(min=1.0)            # [U, d]
            u = per_cand(self.user(user_idx)).expand(n, -1)
            attended = self.id_attention(e_t, per_cand(hist_e), mask)
            feats += [u, e_t, g, y, attended, per_cand(mean).expand(n, -1), e_t * attended]
        if self.cfg.use_content:
            interest = self.content_attention(c_t, per_cand(hist_content_emb), mask)
            feats += [c_t, interest, c_t * interest]
        feats.append(self.recall(cand_recall))
        click, like = self.mmoe(torch.cat(feats, -1))
        wide = self.recall_wide(cand_recall)
        return click + wide[:, 0], like + wide[:, 1], c_t, e_t

    def forward(self, user_idx, hist_item_idx, hist_genres, hist_year, hist_content, cand_item_idx,
                cand_genres, cand_year, cand_content, cand_has_content, cand_recall):
        click, like, _, _ = self.logits(user_idx, hist_item_idx, hist_genres, hist_year, hist_content,
                                        cand_item_idx, cand_genres, cand_year, cand_content, cand_has_content,
                                        cand_recall)
        return torch.sigmoid(click), torch.sigmoid(like)

    def cic_loss(self, c_t: torch.Tensor, e_t: torch.Tensor, item_idx: torch.Tensor,
                 temperature: float = 0.1) -> torch.Tensor:
        """Symmetric InfoNCE between content and ID embeddings of the distinct warm items in the batch."""
        warm = item_idx >= 2
        if int(warm.sum()) < 2:
            return c_t.sum() * 0.0
        idx, first = _first_occurrence(item_idx[warm])
        a = F.normalize(self.cic_content(c_t[warm][first]), dim=-1)
        b = F.normalize(self.cic_id(e_t[warm][first]), dim=-1)
        logits = a @ b.t() / temperature
        target = torch.arange(len(idx))
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def _first_occurrence(values: torch.Tensor):
    uniq, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((len(uniq),), len(values), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(len(values)), reduce="amin")
    return uniq, first


class TwoTowerPrerank(nn.Module):
    def __init__(self, cfg: RankModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.user = nn.Embedding(cfg.num_users, d)
        self.item = nn.Embedding(cfg.num_items, d, padding_idx=0)
        self.item_feat = ItemFeatures(cfg)
        self.text = nn.Linear(cfg.content_dim, d)
        self.user_tower = nn.Sequential(nn.Linear(2 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.item_tower = nn.Sequential(nn.Linear(4 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.bias = nn.Parameter(torch.zeros(1))
        self.recall = nn.Sequential(nn.Linear(cfg.recall_dim, d), nn.ReLU(), nn.Linear(d, 1))

    def forward(self, user_idx, hist_item_idx, cand_item_idx, cand_genres, cand_year, cand_content,
                cand_has_content, cand_recall, ctx: torch.Tensor | None = None):
        v = self.item_vectors(cand_item_idx, cand_genres, cand_year, cand_content, cand_has_content)
        return self.score_vectors(user_idx, hist_item_idx, v, cand_recall, ctx)

    def item_vectors(self, cand_item_idx, cand_genres, cand_year, cand_content, cand_has_content):
        """The item tower [N, d]: depends on the item alone, so serving computes it once per item and
        model version (the `item.onnx` graph) and feeds the vectors to `score_vectors`."""
        g, y = self.item_feat(cand_genres, cand_year)
        text = self.text(cand_content) * cand_has_content.unsqueeze(-1)
        return self.item_tower(torch.cat([self.item(cand_item_idx), g, y, text], -1))

    def score_vectors(self, user_idx, hist_item_idx, cand_item_vec, cand_recall, ctx: torch.Tensor | None = None):
        """The click logit [N] from the user tower, the candidates' item vectors and recall's view of them."""
        m = (hist_item_idx > 0).to(torch.float32).unsqueeze(-1)
        mean = (self.item(hist_item_idx) * m).sum(1) / m.sum(1).clamp(min=1.0)
        u = self.user_tower(torch.cat([self.user(user_idx), mean], -1))          # [U, d]
        if ctx is not None:
            u = u[ctx]
        return (u * cand_item_vec).sum(-1) + self.bias + self.recall(cand_recall).squeeze(-1)


class EM3ItemGraph(nn.Module):
    """Export view of EM3's per-item part: genres, year, content vector -> content embedding item_vec [N, d]."""

    def __init__(self, model: EM3Rank):
        super().__init__()
        self.model = model

    def forward(self, cand_genres, cand_year, cand_content, cand_has_content):
        return self.model.content_embedding(cand_content, cand_has_content, cand_genres, cand_year)


class EM3ScoreGraph(nn.Module):
    """Export view of EM3 over precomputed content embeddings of the history and the candidates."""

    def __init__(self, model: EM3Rank):
        super().__init__()
        self.model = model

    def forward(self, user_idx, hist_item_idx, hist_item_vec, cand_item_idx, cand_genres, cand_year, cand_item_vec,
                cand_recall):
        click, like, _, _ = self.model.logits_from_content(user_idx, hist_item_idx, hist_item_vec, cand_item_idx,
                                                           cand_genres, cand_year, cand_item_vec, cand_recall)
        return torch.sigmoid(click), torch.sigmoid(like)


class PrerankItemGraph(nn.Module):
    """Export view of the prerank item tower: item features -> item_vec [N, d]."""

    def __init__(self, model: TwoTowerPrerank):
        super().__init__()
        self.model = model

    def forward(self, cand_item_idx, cand_genres, cand_year, cand_content, cand_has_content):
        return self.model.item_vectors(cand_item_idx, cand_genres, cand_year, cand_content, cand_has_content)


class PrerankScoreGraph(nn.Module):
    """Export view of the prerank scoring: user, history, item vectors, recall features -> logit [N]."""

    def __init__(self, model: TwoTowerPrerank):
        super().__init__()
        self.model = model

    def forward(self, user_idx, hist_item_idx, cand_item_vec, cand_recall):
        return self.model.score_vectors(user_idx, hist_item_idx, cand_item_vec, cand_recall)
