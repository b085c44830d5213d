"""One training run: data -> split -> train -> evaluate -> export -> parity -> model store."""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import buckets, store
from .config import RunConfig
from .data import FIRST_ITEM_IDX, Dataset, load_dataset, per_user_split
from .evaluate import evaluate_baselines, evaluate_model
from .export import INPUT_NAMES, OUTPUT_NAME, export_onnx, parity_max_abs_diff
from .train import Trainer

PARITY_TOLERANCE = 1e-4


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_item_embeddings(model, path: Path) -> np.ndarray:
    with torch.no_grad():
        table = model.item_vectors().numpy().astype("<f4")
    table[:FIRST_ITEM_IDX] = 0.0  # padding and OOV rows are never retrieved
    table.tofile(path)
    return table


def baseline_metrics(ds: Dataset, split) -> dict:
    """HR@100 of the popularity and item-CF baselines on both splits (recorded in manifests)."""
    b_val, b_test = evaluate_baselines(ds, split, "val"), evaluate_baselines(ds, split, "test")
    return {name: {"val_hr@100": b_val[name]["hr@100"], "test_hr@100": b_test[name]["hr@100"]} for name in b_val}


def run(cfg: RunConfig, data_dir: str | Path, store_dir: str | Path, ds: Dataset | None = None,
        baselines: bool | dict = True, version_suffix: str | None = None) -> dict:
    t_start = time.monotonic()
    data_dir = Path(data_dir)
    if ds is None:
        if not (data_dir / "interactions.tsv").exists():
            raise FileNotFoundError(f"{data_dir}/interactions.tsv not found: run `npm run data` first")
        ds = load_dataset(data_dir)
    split = per_user_split(ds)
    log(f"[{cfg.model}/{cfg.profile}] data {data_dir}: {ds.num_users} users, {ds.vocab_size - 2} items, "
        f"{ds.num_interactions} interactions")

    trainer = Trainer(cfg, ds, split, log=log)
    result = trainer.fit()
    model = trainer.model.eval()
    val = evaluate_model(model, ds, split, "val")
    test = evaluate_model(model, ds, split, "test")
    log(f"[{cfg.model}] best epoch {result['best'].get('epoch')}: val HR@100 {val['hr@100']:.4f}, "
        f"test HR@100 {test['hr@100']:.4f} ({result['train_seconds']:.0f}s training)")

    version = store.unique_version_name(store_dir, cfg.model,
                                        version_suffix if version_suffix is not None else cfg.profile)
    staged = store.staging_dir(store_dir, cfg.model, version)
    try:
        export_onnx(model, staged / "model.onnx")
        parity = parity_max_abs_diff(model, staged / "model.onnx")
        log(f"[{cfg.model}] ONNX parity max |onnxruntime - torch| = {parity:.2e}")
        if not parity <= PARITY_TOLERANCE:
            raise RuntimeError(f"ONNX parity {parity} exceeds {PARITY_TOLERANCE}")
        write_item_embeddings(model, staged / "item_embeddings.f32")
        torch.save(model.state_dict(), staged / "weights.pt")   # the online trainer fine-tunes from it
        (staged / "item_vocab.tsv").write_text(ds.vocab_tsv())

        mc = model.cfg
        L, K, D, N = mc.max_seq_len, mc.num_interests, mc.dim, mc.vocab_size
        metrics = {
            "val_hr@100": val["hr@100"], "val_hr@10": val["hr@10"], "val_hr@50": val["hr@50"],
            "val_ndcg@100": val["ndcg@100"], "test_hr@100": test["hr@100"], "test_hr@10": test["hr@10"],
            "test_ndcg@100": test["ndcg@100"], "eval_users": val["users"],
            "train_seconds": round(result["train_seconds"], 1), "best_epoch": result["best"].get("epoch"),
            "steps": result["steps"], "history": result["history"],
        }
        if baselines:
            metrics["baselines"] = baselines if isinstance(baselines, dict) else baseline_metrics(ds, split)
        ts = ds.timestamps
        manifest = {
            "model": cfg.model,
            "version": version,
            "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": {},
            "signature": {
                "inputs": [{"name": n, "dtype": "int64", "shape": ["batch", L]} for n in INPUT_NAMES],
                "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", K, D]}],
            },
            "max_seq_len": L,
            "num_interests": K,
            "embedding_dim": D,
            "vocab_size": N,
            "item_vocab_sha256": store.sha256_file(staged / "item_vocab.tsv"),
            "padding_index": 0,
            "oov_index": 1,
            "item_embeddings": {"file": "item_embeddings.f32", "dtype": "float32", "byte_order": "little",
                                "shape": [N, D], "normalized": True, "score": "inner product"},
            "buckets": buckets.describe(),
            "data": {
                "dir": str(data_dir),
                "name": ds.manifest.get("name", data_dir.name),
                "source": ds.manifest.get("source"),
                "num_interactions": ds.num_interactions,
                "num_users": ds.num_users,
                "num_items": ds.vocab_size - FIRST_ITEM_IDX,
                "split": "per-user last-1 holdout",
                "min_timestamp": int(ts.min()) if len(ts) else None,
                "max_timestamp": int(ts.max()) if len(ts) else None,
                "files": ds.manifest.get("files", {}),
            },
            "config": {**cfg.to_dict(), "model_config": asdict(mc)},
            "metrics": metrics,
            "onnx_parity_max_abs_diff": parity,
            "trainer_version": __import__("recsys_trainer").__version__,
            "torch_version": torch.__version__,
        }
        final = store.publish(store_dir, cfg.model, version, staged, manifest)
    except BaseException:
        import shutil
        shutil.rmtree(staged, ignore_errors=True)
        raise
    log(f"[{cfg.model}] wrote {final} (CURRENT -> {version}) in {time.monotonic() - t_start:.0f}s total")
    return {"version_dir": str(final), "version": version, "metrics": metrics, "parity": parity}
