"""Online mode for the sequence recall models (kuaiformer, sasrec): fine-tune the serving version
on the engaged samples of a shard (history as of the sample -> the engaged item is the next item)
and publish it only if its HR@100 on the newest `holdout_fraction` of them does not drop by more
than `tolerance` (docs/ranking.md "Online updates"; the shard format is in rank_online.py).

History entries are [item_id, timestamp_ms] or [item_id, timestamp_ms, event_type, value]
(EventType numbers of recsys.common.v1: 2 click, 3 like, 4 rating, 5 watch, 8 share); the rating
bucket follows buckets.py, and an entry without a type counts as a click.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from . import buckets, store
from .config import RunConfig, TrainConfig
from .data import FIRST_ITEM_IDX, OOV_IDX, load_dataset, per_user_split
from .export import export_onnx, parity_max_abs_diff
from .pipeline import PARITY_TOLERANCE, write_item_embeddings
from .rank_online import read_shard
from .train import Batch, Trainer

_TYPE_BUCKET = {2: 11, 3: 12, 5: 13, 8: 14, 6: 15, 7: 16}   # EventType -> rating bucket (4 = RATING: by value)


def _bucket(entry: list) -> int:
    if len(entry) < 4:
        return buckets.EVENT_TYPE_BUCKETS["click"]
    etype, value = int(entry[2]), float(entry[3])
    return buckets.rating_bucket(value) if etype == 4 else _TYPE_BUCKET.get(etype, 11)


def windows(rows: list[dict], index_of: dict[str, int], L: int):
    """Left-padded encoder inputs of each sample's history (the serving rule: gaps inside the
    window, the oldest event gets bucket 1)."""
    n = len(rows)
    item = np.zeros((n, L), np.int64)
    rating = np.zeros((n, L), np.int64)
    gap = np.zeros((n, L), np.int64)
    for r, row in enumerate(rows):
        h = row["history"][-L:]
        off = L - len(h)
        for j, e in enumerate(h):
            item[r, off + j] = index_of.get(e[0], OOV_IDX)
            rating[r, off + j] = _bucket(e)
            gap[r, off + j] = buckets.GAP_FIRST if j == 0 else buckets.gap_bucket((int(e[1]) - int(h[j - 1][1])) / 1000)
    return item, rating, gap


@torch.no_grad()
def hit_rate(model, item, rating, gap, targets, k: int = 100) -> float:
    if len(targets) == 0:
        return float("nan")
    u = model(torch.from_numpy(item), torch.from_numpy(rating), torch.from_numpy(gap))
    scores = torch.einsum("bkd,vd->bkv", u, model.item_vectors()).amax(1)
    scores[:, :FIRST_ITEM_IDX] = -float("inf")
    scores.scatter_(1, torch.from_numpy(item), -float("inf"))
    t = scores[torch.arange(len(targets)), torch.from_numpy(targets)]
    rank = (scores > t[:, None]).sum(1)
    return float((rank < k).float().mean())


def online_update(model_name: str, store_dir: str | Path, data_dir: str | Path, shard: str | Path,
                  tolerance: float = 0.01, holdout_fraction: float = 0.2, epochs: int = 1, lr: float = 2e-4,
                  min_holdout: int = 10, seed: int = 0) -> dict:
    t0 = time.monotonic()
    torch.manual_seed(seed)
    store_dir = Path(store_dir)
    parent = store.read_current(store_dir, model_name)
    if not parent:
        return {"decision": "skipped", "reason": f"no serving {model_name} version", "seconds": 0}
    vdir = store_dir / model_name / parent
    manifest = store.verify_version(vdir)
    if "weights.pt" not in manifest["files"]:
        return {"decision": "skipped", "parent_version": parent, "seconds": 0,
                "reason": "the serving version has no weights.pt (published before online mode): retrain offline"}
    ds = load_dataset(data_dir)
    if ds.vocab_tsv() != (vdir / "item_vocab.tsv").read_text():
        raise ValueError(f"{vdir}: item vocabulary differs from the dataset's")
    raw = manifest["config"]
    # model_config is the built ModelConfig (vocab size, genres and year buckets included)
    cfg = RunConfig(model=raw["model"], profile=raw["profile"], seed=seed, threads=raw.get("threads", 2),
                    model_config=dict(raw["model_config"]), train=TrainConfig(**raw["train"]))
    trainer = Trainer(cfg, ds, per_user_split(ds), log=lambda _: None)
    trainer.model.load_state_dict(torch.load(vdir / "weights.pt", weights_only=True))
    model = trainer.model.eval()

    index_of = {item: i + FIRST_ITEM_IDX for i, item in enumerate(ds.item_ids)}
    rows = sorted((r for r in read_shard(shard) if float(r["labels"].get("click", 0)) > 0
                   and index_of.get(r["item_id"]) is not None), key=lambda r: r["timestamp_ms"])
    for r in rows:
        if any(int(e[1]) >= int(r["timestamp_ms"]) for e in r["history"]):
            raise ValueError(f"shard sample of {r['user_id']} at {r['timestamp_ms']} has a history event at or after it")
    n_hold = int(round(len(rows) * holdout_fraction))
    counts = {"engaged_known_items": len(rows), "train": len(rows) - n_hold, "holdout": n_hold}
    base = {"parent_version": parent, "samples": counts}
    if n_hold < min_holdout:
        return {**base, "decision": "skipped", "seconds": round(time.monotonic() - t0, 1),
                "reason": f"holdout of {n_hold} engaged samples is below {min_holdout}"}
    L = model.cfg.max_seq_len
    item, rating, gap = windows(rows, index_of, L)
    targets = np.array([index_of[r["item_id"]] for r in rows], np.int64)
    tr, ho = slice(0, len(rows) - n_hold), slice(len(rows) - n_hold, len(rows))
    before = hit_rate(model, item[ho], rating[ho], gap[ho], targets[ho])

    tuned = copy.deepcopy(model)
    trainer.model = tuned
    opt = torch.optim.AdamW(tuned.parameters(), lr=lr, weight_decay=cfg.train.weight_decay)
    bs = cfg.train.batch_size
    g = np.random.default_rng(seed)
    for _ in range(epochs):
        tuned.train()
        order = g.permutation(np.arange(tr.stop))
        for a in range(0, len(order), bs):
            sel = order[a:a + bs]
            b = Batch(*(torch.from_numpy(x) for x in (item[sel], rating[sel], gap[sel], targets[sel][:, None])))
            loss = trainer.loss(b)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tuned.parameters(), cfg.train.grad_clip)
            opt.step()
    tuned.eval()
    after = hit_rate(tuned, item[ho], rating[ho], gap[ho], targets[ho])
    holdout = {"hr@100_before": before, "hr@100_after": after, "tolerance": tolerance}
    if not after >= before - tolerance:
        return {**base, "decision": "rejected", "holdout": holdout, "seconds": round(time.monotonic() - t0, 1),
                "reason": f"holdout HR@100 {before:.4f} -> {after:.4f} regressed beyond tolerance"}

    version = store.unique_version_name(store_dir, model_name, "online")
    staged = store.staging_dir(store_dir, model_name, version)
    try:
        export_onnx(tuned, staged / "model.onnx")
        parity = parity_max_abs_diff(tuned, staged / "model.onnx")
        if not parity <= PARITY_TOLERANCE:
            raise RuntimeError(f"ONNX parity {parity} exceeds {PARITY_TOLERANCE}")
        write_item_embeddings(tuned, staged / "item_embeddings.f32")
        shutil.copyfile(vdir / "item_vocab.tsv", staged / "item_vocab.tsv")
        torch.save(tuned.state_dict(), staged / "weights.pt")
        keep = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files",
                                                               "onnx_parity_max_abs_diff")}
        store.publish(store_dir, model_name, version, staged, {
            **keep, "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "onnx_parity_max_abs_diff": parity, "parent_version": parent,
            "online": {"samples": counts, "holdout": holdout, "shard": str(shard),
                       "trained_through_ms": int(rows[-1]["timestamp_ms"]), "epochs": epochs, "lr": lr}},
            expect_current=parent)
    except store.StaleParent as e:   # the samples are trained again on the new serving version
        shutil.rmtree(staged, ignore_errors=True)
        return {**base, "decision": "skipped", "holdout": holdout, "seconds": round(time.monotonic() - t0, 1),
                "reason": f"a newer version was published meanwhile ({e})"}
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return {**base, "decision": "published", "version": version, "parity": parity, "holdout": holdout,
            "reason": "holdout within tolerance", "seconds": round(time.monotonic() - t0, 1)}
