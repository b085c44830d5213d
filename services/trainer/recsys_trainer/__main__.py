"""CLI: python -m recsys_trainer {train,verify,baselines} ...  (scripts/train.sh wraps `train`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import MODELS, PROFILES, load_config
from .store import strict_json



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="recsys_trainer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train, export and publish model versions")
    tr.add_argument("--profile", choices=PROFILES, default="default")
    tr.add_argument("--model", choices=(*MODELS, "all"), default="all")
    tr.add_argument("--data", default="data/ml-latest-small")
    tr.add_argument("--store", default="var/models")
    tr.add_argument("--config", help="a config JSON instead of configs/<model>.<profile>.json (one model only)")
    tr.add_argument("--no-baselines", action="store_true", help="skip popular/item-CF metrics in the manifest")
    ve = sub.add_parser("verify", help="check CURRENT and the checksums of a model's current version")
    ve.add_argument("--store", default="var/models")
    ve.add_argument("--model", choices=(*MODELS, "em3", "prerank", "generative"), default="kuaiformer")
    rk = sub.add_parser("rank", help="train, evaluate and publish the prerank and EM3 rank models")
    rk.add_argument("--profile", choices=PROFILES, default="default")
    rk.add_argument("--data", default="data/ml-latest-small")
    rk.add_argument("--store", default="var/models", help="where the content vectors are read and models published")
    rk.add_argument("--replay", required=True,
                    help="the served recall replayed at past moments (services/gateway/dist/eval/replay-cli.js)")
    rk.add_argument("--config", help="a config JSON instead of configs/rank.<profile>.json")
    rk.add_argument("--docs", help="write the ranking section of this evaluation markdown file")
    ge = sub.add_parser("generative", help="train, evaluate and publish the generative retrieval model")
    ge.add_argument("--profile", choices=PROFILES, default="default")
    ge.add_argument("--data", default="data/ml-latest-small")
    ge.add_argument("--store", default="var/models", help="reads `content` and `kuaiformer`, publishes `generative`")
    ge.add_argument("--config", help="a config JSON instead of configs/generative.<profile>.json")
    on = sub.add_parser("online", help="fine-tune a serving ranking model on a sample shard; publish if no regression")
    on.add_argument("--model", choices=("em3", "prerank", *MODELS), required=True)
    on.add_argument("--store", default="var/models")
    on.add_argument("--data", default="data/ml-latest-small")
    on.add_argument("--shard", required=True, help="JSONL samples with histories (services/online-trainer)")
    on.add_argument("--tolerance", type=float, default=0.01, help="allowed holdout AUC drop")
    on.add_argument("--holdout-fraction", type=float, default=0.2)
    on.add_argument("--epochs", type=int, default=1)
    on.add_argument("--lr", type=float, help="default 5e-4 (ranking models), 2e-4 (recall models)")
    on.add_argument("--min-holdout", type=int, help="default 20 samples (ranking), 10 engaged samples (recall)")
    rx = sub.add_parser("reexport", help="publish the serving em3/prerank version again in this trainer's export format")
    rx.add_argument("--model", choices=("em3", "prerank"), required=True)
    rx.add_argument("--store", default="var/models")
    ba = sub.add_parser("baselines", help="popular and item-CF HR@K on the per-user split")
    ba.add_argument("--data", default="data/ml-latest-small")
    args = ap.parse_args(argv)

    if args.cmd == "train":
        from .data import load_dataset
        from .pipeline import log, run

        models = list(MODELS) if args.model == "all" else [args.model]
        if args.config and len(models) != 1:
            ap.error("--config needs a single --model")
        data_dir = Path(args.data)
        if not (data_dir / "interactions.tsv").exists():
            log(f"train: {data_dir}/interactions.tsv not found: run `npm run data` first")
            return 2
        t0 = time.monotonic()
        ds = load_dataset(data_dir)
        baselines: bool | dict = False
        if not args.no_baselines:
            from .data import per_user_split
            from .pipeline import baseline_metrics
            baselines = baseline_metrics(ds, per_user_split(ds))
            log("train: baselines HR@100 " + ", ".join(
                f"{k} val {v['val_hr@100']:.4f} test {v['test_hr@100']:.4f}" for k, v in baselines.items()))
        summary = {}
        for m in models:
            cfg = load_config(m, args.profile, args.config)
            r = run(cfg, data_dir, args.store, ds=ds, baselines=baselines)
            summary[m] = {"version": r["version"], "val_hr@100": r["metrics"]["val_hr@100"],
                          "test_hr@100": r["metrics"]["test_hr@100"], "onnx_parity_max_abs_diff": r["parity"],
                          "train_seconds": r["metrics"]["train_seconds"]}
        log(f"train: profile {args.profile} done in {time.monotonic() - t0:.0f}s")
        print(json.dumps(summary, indent=2))
        return 0

    if args.cmd == "rank":
        from .rank_train import load_rank_config, run as run_rank

        cfg = load_rank_config(args.profile, args.config)
        summary = run_rank(cfg, args.data, args.store, args.replay, args.docs)
        print(json.dumps(summary, indent=2))
        return 0

    if args.cmd == "generative":
        from .generative import load_gen_config, run as run_generative

        summary = run_generative(load_gen_config(args.profile, args.config), args.data, args.store)
        print(strict_json(summary, indent=2))
        return 0

    if args.cmd == "online":
        if args.model in MODELS:
            from .recall_online import online_update
        else:
            from .rank_online import online_update
        extra = {k: v for k, v in (("lr", args.lr), ("min_holdout", args.min_holdout)) if v is not None}
        result = online_update(args.model, args.store, args.data, args.shard, tolerance=args.tolerance,
                               holdout_fraction=args.holdout_fraction, epochs=args.epochs, **extra)
        print(strict_json(result))
        return 0

    if args.cmd == "reexport":
        from .rank_train import reexport

        print(json.dumps(reexport(args.model, args.store)))
        return 0

    if args.cmd == "verify":
        from . import store

        version = store.read_current(args.store, args.model)
        if not version:
            print(f"no CURRENT for {args.model} in {args.store}", file=sys.stderr)
            return 1
        manifest = store.verify_version(Path(args.store) / args.model / version)
        print(json.dumps({"model": args.model, "version": version, "files": list(manifest["files"])}))
        return 0

    if args.cmd == "baselines":
        from .data import load_dataset, per_user_split
        from .evaluate import evaluate_baselines

        ds = load_dataset(args.data)
        sp = per_user_split(ds)
        print(json.dumps({w: evaluate_baselines(ds, sp, w) for w in ("val", "test")}, indent=2))
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
