"""Online mode: fine-tune the serving ranking model on fresh samples and publish it only if it
does not regress on a holdout (docs/ranking.md "Online updates").

    python -m recsys_trainer online --model em3|prerank --store DIR --data DIR --shard FILE
                                    [--tolerance 0.01] [--holdout-fraction 0.2] [--epochs 1] [--lr 5e-4]

The shard (JSONL, written by services/online-trainer from the `samples` and `feedback` topics) has
one labelled sample per line with the user's history as of that moment:
    {"user_id": "u", "item_id": "i", "timestamp_ms": 1, "labels": {"click": 1, "like": 0},
     "history": [["item", ts_ms, type, value], ...]}   # oldest first, strictly before timestamp_ms
(type: the EventType number, value: a rating's stars or 0; the ranking models read item and time,
the sequence models' online update also the type and value. Two-element entries are accepted.)

Vocabularies stay those of the serving version (new items and users are OOV, scored from content).
The newest `holdout_fraction` of the samples (by time) is held out: the serving model and the
fine-tuned one are both scored on it, and the new version is published when its click AUC (and
like AUC where both classes exist) is at least the serving model's minus `tolerance`.
Prints one JSON object: {"decision": "published"|"rejected"|"skipped", "reason", "parent_version",
"version"?, "holdout": {...}, "samples": {...}, "seconds"}.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import store
from .data import FIRST_ITEM_IDX, OOV_IDX, PAD_IDX, load_dataset
from .rank_data import Samples, check_no_leakage, load_content
from .rank_model import EM3Rank, RankModelConfig, TwoTowerPrerank
from .rank_train import (EM3_INPUTS, PRERANK_INPUTS, Features, RankTrainConfig, evaluate, log, probe_inputs,
                         publish, train_model)

VOCAB_FILES = ("item_vocab.tsv", "user_vocab.tsv", "genre_vocab.tsv")


def _read_vocab(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().split("\n")[1:]:
        if line:
            i, name = line.split("\t")
            out[name] = int(i)
    return out


class _OnlineVocab:
    """What Features needs: dataset index -> model item index, local user -> model user index."""

    def __init__(self, item_map: np.ndarray, user_map: np.ndarray):
        self.item_map, self.user_map = item_map, user_map


def read_shard(path: str | Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        for key in ("user_id", "item_id", "timestamp_ms", "labels", "history"):
            if key not in r:
                raise ValueError(f"{path}:{n}: missing {key}")
        rows.append(r)
    return rows


def online_update(model_name: str, store_dir: str | Path, data_dir: str | Path, shard: str | Path,
                  tolerance: float = 0.01, holdout_fraction: float = 0.2, epochs: int = 1, lr: float = 5e-4,
                  min_holdout: int = 20, seed: int = 0) -> dict:
    t0 = time.monotonic()
    torch.manual_seed(seed)
    store_dir = Path(store_dir)
    parent = store.read_current(store_dir, model_name)
    if not parent:
        return {"decision": "skipped", "reason": f"no serving {model_name} version", "seconds": 0}
    vdir = store_dir / model_name / parent
    manifest = store.verify_version(vdir)
    L = int(manifest["max_hist_len"])
    ds = load_dataset(data_dir)
    content = load_content(store_dir, ds)
    if content.dim != int(manifest["content_dim"]):
        raise ValueError(f"content dim {content.dim} != the model's {manifest['content_dim']}")

    item_vocab, user_vocab = _read_vocab(vdir / "item_vocab.tsv"), _read_vocab(vdir / "user_vocab.tsv")
    ds_index = {item: i + FIRST_ITEM_IDX for i, item in enumerate(ds.item_ids)}
    item_map = np.full(ds.vocab_size, OOV_IDX, np.int64)
    item_map[PAD_IDX] = PAD_IDX
    for item, i in ds_index.items():
        item_map[i] = item_vocab.get(item, OOV_IDX)

    rows = read_shard(shard)
    users = sorted({r["user_id"] for r in rows})
    local_user = {u: k for k, u in enumerate(users)}
    user_map = np.array([user_vocab.get(u, OOV_IDX) for u in users], np.int64)
    # items outside the dataset: the dataset's OOV row (no genres, no year, no content vector)
    to_ds = lambda item: ds_index.get(item, OOV_IDX)  # noqa: E731

    rows.sort(key=lambda r: r["timestamp_ms"])
    K = len(rows)
    hist = np.zeros((K, L), np.int64)
    hist_ts = np.zeros((K, L), np.int64)
    for k, r in enumerate(rows):
        h = r["history"][-L:]
        if h:
            hist[k, L - len(h):] = [to_ds(e[0]) for e in h]        # entries: [item, ts, (type, value)]
            hist_ts[k, L - len(h):] = [int(e[1]) for e in h]
    ctx_ts = np.array([int(r["timestamp_ms"]) for r in rows], np.int64)
    n_hold = int(round(K * holdout_fraction))
    part = np.zeros(K, np.int64)
    part[K - n_hold:] = 1                                    # the newest samples are the holdout
    s = Samples(np.array([local_user[r["user_id"]] for r in rows], np.int64), ctx_ts, hist, hist_ts, part,
                np.arange(K), np.array([to_ds(r["item_id"]) for r in rows], np.int64),
                np.array([float(r["labels"].get("click", 0)) for r in rows], np.float32),
                np.array([float(r["labels"].get("like", 0)) for r in rows], np.float32), np.zeros(K, np.int64))
    check_no_leakage(s)
    counts = {"total": K, "train": int(K - n_hold), "holdout": n_hold,
              "positives": int((s.s_click > 0).sum()), "new_users": int((user_map == OOV_IDX).sum()),
              "cold_items": int((item_map[s.s_item] == OOV_IDX).sum())}
    base = {"parent_version": parent, "samples": counts}
    hold_click = s.s_click[part == 1]
    if n_hold < min_holdout or hold_click.min(initial=1) == hold_click.max(initial=0):
        return {**base, "decision": "skipped", "seconds": round(time.monotonic() - t0, 1),
                "reason": f"holdout of {n_hold} samples lacks both click classes or is below {min_holdout}"}

    cfg = RankModelConfig(**manifest["model_config"])
    model = EM3Rank(cfg) if model_name == "em3" else TwoTowerPrerank(cfg)
    model.load_state_dict(torch.load(vdir / "weights.pt", weights_only=True))
    model.eval()
    # The impression log does not carry recall's view of a shown item yet: cand_recall is zeros here, so
    # the first layers' weights on it get no gradient and only their biases move.
    feats = Features(ds, _OnlineVocab(item_map, user_map), content, len(manifest.get("recall_features", [])) or 1)
    before = evaluate(model, feats, s, 1, feats.vocab)
    tuned = copy.deepcopy(model)
    tc = RankTrainConfig(epochs=epochs, batch_contexts=256, lr=lr, oov_dropout=0.0)
    train_model(tuned, feats, s, tc, feats.vocab, seed, f"{model_name}:online", cic=False)
    after = evaluate(tuned, feats, s, 1, feats.vocab)
    holdout = {"before": before, "after": after, "tolerance": tolerance}

    checks = ["click_auc"] + (["like_auc"] if model_name == "em3" else [])
    worse = [m for m in checks
             if before.get(m) == before.get(m) and not (after.get(m, float("nan")) >= before[m] - tolerance)]
    if worse:
        return {**base, "decision": "rejected", "holdout": holdout, "seconds": round(time.monotonic() - t0, 1),
                "reason": "regressed beyond tolerance on " + ", ".join(
                    f"{m} {before[m]:.4f} -> {after.get(m, float('nan')):.4f}" for m in worse)}

    inputs = EM3_INPUTS if model_name == "em3" else PRERANK_INPUTS
    outputs = list(EM3Rank.TASKS) if model_name == "em3" else ["score"]
    probe = probe_inputs(cfg, L, int(manifest["max_genres"]), prerank=model_name == "prerank")
    keep = {k: v for k, v in manifest.items() if k not in ("model", "version", "created_at", "files",
                                                           "onnx_parity_max_abs_diff", "metrics")}
    try:
        version, parity = publish(
            tuned, model_name, store_dir, "online", inputs, outputs, probe,
            {f: (vdir / f).read_text() for f in VOCAB_FILES},
            {**keep, "parent_version": parent,
             "online": {"samples": counts, "holdout": holdout, "shard": str(shard),
                        "trained_through_ms": int(ctx_ts.max()),
                        "train_config": {"epochs": epochs, "lr": lr}},
             "metrics": manifest.get("metrics", {})},
            expect_current=parent)
    except store.StaleParent as e:   # the samples are trained again on the new serving version
        return {**base, "decision": "skipped", "holdout": holdout, "seconds": round(time.monotonic() - t0, 1),
                "reason": f"a newer version was published meanwhile ({e})"}
    log(f"[online:{model_name}] {parent} -> {version}: holdout click AUC {before['click_auc']:.4f} -> "
        f"{after['click_auc']:.4f}")
    return {**base, "decision": "published", "version": version, "parity": parity, "holdout": holdout,
            "reason": "holdout within tolerance", "seconds": round(time.monotonic() - t0, 1)}
