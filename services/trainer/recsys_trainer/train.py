"""Training loop: next-item prediction on every cut point of the training part of
each user's sequence, sampled / in-batch / full softmax with logQ correction and
label smoothing, score = max over interests of <item, u_i> / temperature.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .config import RunConfig
from .data import FIRST_ITEM_IDX, NUM_YEAR_BUCKETS, Dataset, Split, build_windows, item_counts
from .evaluate import evaluate_model
from .model import KuaiFormer, ModelConfig

NEG = -1e9


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_model(cfg: RunConfig, ds: Dataset) -> KuaiFormer:
    mc = dict(cfg.model_config)
    mc["vocab_size"] = ds.vocab_size
    mc["num_genres"] = max(len(ds.genre_names), 1)
    if mc.pop("use_year", False):
        mc["num_years"] = NUM_YEAR_BUCKETS
    return KuaiFormer(ModelConfig(**mc), torch.from_numpy(ds.item_genres), torch.from_numpy(ds.item_years))


def smoothed_ce(logits: torch.Tensor, valid: torch.Tensor, eps: float) -> torch.Tensor:
    """Cross-entropy with the positive in column 0; label smoothing spread over valid columns only."""
    logits = logits.masked_fill(~valid, NEG)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp[:, 0]
    if eps <= 0:
        return nll.mean()
    n_valid = valid.sum(-1).clamp(min=1)
    smooth = -(logp * valid).sum(-1) / n_valid
    return ((1 - eps) * nll + eps * smooth).mean()


@dataclass
class Batch:
    item_idx: torch.Tensor
    rating_bucket: torch.Tensor
    gap_bucket: torch.Tensor
    targets: torch.Tensor   # [B, m] vocab index, 0 = none


class Trainer:
    def __init__(self, cfg: RunConfig, ds: Dataset, split: Split, log=print):
        self.cfg, self.ds, self.split, self.log = cfg, ds, split, log
        seed_everything(cfg.seed, cfg.threads)
        self.rng = np.random.default_rng(cfg.seed)
        self.model = build_model(cfg, ds)
        t = cfg.train
        counts = item_counts(ds, split)
        counts[:FIRST_ITEM_IDX] = 0
        # in-batch positives arrive with probability ~ count; the sampled loss draws ~ (count + 1) ** alpha
        self.q_pop = torch.from_numpy(np.maximum(counts, 1.0) / max(counts.sum(), 1.0)).float()
        w = (counts + 1.0) ** t.sampler_alpha
        w[:FIRST_ITEM_IDX] = 0
        self.q_sample = torch.from_numpy(w / w.sum()).float()
        self.positions = self._positions()

    # ---- samples ---------------------------------------------------------------------------

    def _positions(self):
        """(user, cut) pairs: history [start, cut), targets from cut on, all inside the training part."""
        t = self.cfg.train
        users, cuts = [], []
        for u in range(self.ds.num_users):
            s, e = int(self.ds.offsets[u]), int(self.split.train_end[u])
            c = np.arange(s + t.min_history, e)
            users.append(np.full(len(c), u))
            cuts.append(c)
        return np.concatenate(users), np.concatenate(cuts)

    def _epoch_order(self):
        users, cuts = self.positions
        t = self.cfg.train
        if t.user_cap > 0:
            keep = np.zeros(len(users), dtype=bool)
            bounds = np.searchsorted(users, np.arange(self.ds.num_users + 1))
            for u in range(self.ds.num_users):
                a, b = bounds[u], bounds[u + 1]
                if b - a <= t.user_cap:
                    keep[a:b] = True
                else:
                    keep[self.rng.choice(np.arange(a, b), t.user_cap, replace=False)] = True
            idx = np.flatnonzero(keep)
        else:
            idx = np.arange(len(users))
        return self.rng.permutation(idx)

    def _epoch_batches(self) -> list[np.ndarray]:
        """Shuffled batches of similar history length (sorted inside chunks of 32 batches), so the
        compression of all-padding groups can be skipped for most batches. Batch order is shuffled."""
        bs = self.cfg.train.batch_size
        order = self._epoch_order()
        users, cuts = self.positions
        hist_len = np.minimum(cuts[order] - self.ds.offsets[users[order]], self.model.cfg.max_seq_len)
        batches = []
        chunk = 32 * bs
        for c in range(0, len(order), chunk):
            sub = order[c:c + chunk]
            sub = sub[np.argsort(hist_len[c:c + chunk], kind="stable")]
            batches += [sub[i:i + bs] for i in range(0, len(sub), bs)]
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def _batch(self, sel: np.ndarray) -> Batch:
        users, cuts = self.positions
        u, c = users[sel], cuts[sel]
        t = self.cfg.train
        it, rb, gb = build_windows(self.ds, self.ds.offsets[u], c, self.model.cfg.max_seq_len,
                                   t.item_dropout, self.rng)
        m = t.targets_per_sample
        tpos = c[:, None] + np.arange(m)[None, :]
        ok = tpos < self.split.train_end[u][:, None]
        tg = np.where(ok, self.ds.items[np.where(ok, tpos, 0)], 0)
        return Batch(*(torch.from_numpy(a) for a in (it, rb, gb, tg)))

    # ---- loss ------------------------------------------------------------------------------

    def loss(self, b: Batch) -> torch.Tensor:
        t = self.cfg.train
        dense = t.dense_weight > 0
        out = self.model(b.item_idx, b.rating_bucket, b.gap_bucket, return_sequence=dense)
        u, seq = out if dense else (out, None)                             # [B, K, D], [B, raw, D]
        tau = t.temperature
        B, m = b.targets.shape
        rows, cols = torch.nonzero(b.targets > 0, as_tuple=True)
        pos_idx = b.targets[rows, cols]                                    # [P]
        pos_vec = self.model.item_vectors(pos_idx)                         # [P, D]
        pos_logit = (u[rows] * pos_vec[:, None, :]).sum(-1).amax(-1) / tau  # [P]

        if t.loss == "full":
            items = self.model.item_vectors()                              # [V, D]
            logits = torch.einsum("bkd,vd->bkv", u, items).amax(1) / tau   # [B, V]
            V = logits.shape[1]
            valid = torch.ones(B, V, dtype=torch.bool)
            valid[:, :FIRST_ITEM_IDX] = False
            if t.mask_history:
                valid.scatter_(1, b.item_idx, False)
            valid.scatter_(1, b.targets, False)                            # other positives are not negatives
            valid[:, 0] = False
            neg_logits, neg_valid = logits[rows], valid[rows]              # [P, V]
        else:
            if t.loss == "inbatch":
                neg_idx = pos_idx
                q = self.q_pop[neg_idx] * len(neg_idx)
            else:
                neg_idx = torch.multinomial(self.q_sample, t.num_negatives, replacement=True)
                q = self.q_sample[neg_idx] * t.num_negatives
            neg_vec = self.model.item_vectors(neg_idx)                     # [N, D]
            neg_logits = torch.einsum("bkd,nd->bkn", u, neg_vec).amax(1)[rows] / tau   # [P, N]
            if t.logq:
                neg_logits = neg_logits - torch.log(q)[None, :]
                qp = (self.q_pop if t.loss == "inbatch" else self.q_sample)[pos_idx]
                qp = qp * (len(neg_idx))
                pos_logit = pos_logit - torch.log(qp)
            # a negative is invalid for a row when it is one of that sample's targets (an accidental
            # hit) or, with mask_history, already in its input window
            excluded = torch.zeros(B, self.ds.vocab_size, dtype=torch.bool)
            excluded.scatter_(1, b.targets, True)
            if t.mask_history:
                excluded.scatter_(1, b.item_idx, True)
            neg_valid = ~excluded[rows][:, neg_idx]                        # [P, N]
        logits = torch.cat([pos_logit[:, None], neg_logits], 1)
        valid = torch.cat([torch.ones(len(rows), 1, dtype=torch.bool), neg_valid], 1)
        loss = smoothed_ce(logits, valid, t.label_smoothing)
        if dense:
            loss = loss + t.dense_weight * self.dense_loss(b, seq, neg_idx if t.loss != "full" else None, excluded
                                                           if t.loss != "full" else None)
        return loss

    def dense_loss(self, b: Batch, seq: torch.Tensor, neg_idx, excluded) -> torch.Tensor:
        """Next-item loss at the raw positions: the causal output at raw position j predicts the
        event at j + 1 (the last one predicts the sample's first target). Same negatives and logQ."""
        t = self.cfg.train
        raw = self.model.cfg.raw_len
        items = b.item_idx[:, -raw:]
        nxt = torch.cat([items[:, 1:], b.targets[:, :1]], 1)               # [B, raw]
        ok = (items > 0) & (nxt > 0)
        r, j = torch.nonzero(ok, as_tuple=True)
        if len(r) == 0:
            return seq.sum() * 0.0
        cap = t.dense_positions * items.shape[0]
        if len(r) > cap:
            keep = torch.randperm(len(r))[:cap]
            r, j = r[keep], j[keep]
        s = seq[r, j]                                                      # [P, D]
        tgt = nxt[r, j]
        pos = (s * self.model.item_vectors(tgt)).sum(-1) / t.temperature
        if neg_idx is None:   # full softmax: all items as negatives
            neg_idx = torch.arange(FIRST_ITEM_IDX, self.ds.vocab_size)
            q = None
            ex = torch.zeros(b.item_idx.shape[0], self.ds.vocab_size, dtype=torch.bool)
            ex.scatter_(1, b.item_idx, True)
            ex.scatter_(1, b.targets, True)
            excluded = ex
        else:
            q = (self.q_pop if t.loss == "inbatch" else self.q_sample)
        neg = s @ self.model.item_vectors(neg_idx).T / t.temperature       # [P, N]
        if t.logq and q is not None:
            n = len(neg_idx)
            neg = neg - torch.log(q[neg_idx] * n)[None, :]
            pos = pos - torch.log(q[tgt] * n)
        valid = ~excluded[r][:, neg_idx]
        logits = torch.cat([pos[:, None], neg], 1)
        valid = torch.cat([torch.ones(len(r), 1, dtype=torch.bool), valid], 1)
        return smoothed_ce(logits, valid, t.label_smoothing)

    # ---- loop ------------------------------------------------------------------------------

    def fit(self) -> dict:
        t = self.cfg.train
        model = self.model
        decay, no_decay = [], []
        for n, p in model.named_parameters():
            (no_decay if p.ndim < 2 or "ln" in n or n in ("pos_emb", "queries", "group_pos") else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.98))
        steps_per_epoch = math.ceil(len(self._epoch_order()) / t.batch_size)
        total = steps_per_epoch * t.epochs
        if t.max_steps:
            total = min(total, t.max_steps)
        t0 = time.monotonic()

        def lr_factor(s: int) -> float:
            """Linear warm-up, then cosine decay to 5%. With a time budget, progress is whichever is
            further along, steps or wall-clock, so a slow machine still ends on a decayed LR."""
            warm = min(1.0, (s + 1) / max(1, t.warmup_steps))
            progress = s / max(1, total)
            if t.time_budget_s:
                progress = max(progress, (time.monotonic() - t0) / t.time_budget_s)
            return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        history = []
        best = {"val_hr@100": -1.0}
        best_state = None
        step, bad = 0, 0
        stop = False
        n_params = sum(p.numel() for p in model.parameters())
        self.log(f"[{self.cfg.model}/{self.cfg.profile}] {n_params:,} parameters, {len(self.positions[0]):,} "
                 f"training cut points, {steps_per_epoch} steps/epoch, up to {t.epochs} epochs / {total} steps")
        for epoch in range(1, t.epochs + 1):
            model.train()
            bar = tqdm(self._epoch_batches(), desc=f"{self.cfg.model} epoch {epoch}/{t.epochs}",
                       unit="step", file=sys.stderr, leave=False, mininterval=1.0, dynamic_ncols=True)
            run_loss, n = 0.0, 0
            for sel in bar:
                loss = self.loss(self._batch(sel))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if t.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                opt.step()
                sched.step()
                step += 1
                run_loss += loss.item()
                n += 1
                bar.set_postfix(loss=f"{run_loss / n:.3f}", refresh=False)
                if (t.max_steps and step >= t.max_steps) or (t.time_budget_s and time.monotonic() - t0 > t.time_budget_s):
                    stop = True
                    break
            bar.close()
            val = evaluate_model(model, self.ds, self.split, "val", batch_size=t.eval_batch_size)
            rec = {"epoch": epoch, "step": step, "loss": run_loss / max(n, 1), "val_hr@100": val["hr@100"],
                   "val_hr@10": val["hr@10"], "val_ndcg@100": val["ndcg@100"], "seconds": time.monotonic() - t0}
            history.append(rec)
            self.log(f"[{self.cfg.model}] epoch {epoch} step {step} loss {rec['loss']:.4f} "
                     f"val HR@10 {val['hr@10']:.4f} HR@100 {val['hr@100']:.4f} NDCG@100 {val['ndcg@100']:.4f} "
                     f"({rec['seconds']:.0f}s)")
            if val["hr@100"] > best["val_hr@100"]:
                best = {"val_hr@100": val["hr@100"], "epoch": epoch, "step": step}
                best_state = copy.deepcopy(model.state_dict())
                bad = 0
            else:
                bad += 1
            if stop or (t.patience and bad >= t.patience):
                if not stop:
                    self.log(f"[{self.cfg.model}] early stop: no val HR@100 gain in {t.patience} epochs")
                break
        train_seconds = time.monotonic() - t0
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return {"history": history, "best": best, "train_seconds": train_seconds, "steps": step}
