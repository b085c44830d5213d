"""Run configuration: one JSON file per model and profile in services/trainer/configs/."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MODELS = ("kuaiformer", "sasrec")
PROFILES = ("quick", "default", "full")


@dataclass
class TrainConfig:
    epochs: int = 20
    max_steps: int = 0                 # 0 = no cap
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    temperature: float = 0.07
    label_smoothing: float = 0.1
    loss: str = "sampled"              # sampled | inbatch | full
    num_negatives: int = 2048          # sampled loss: shared negatives per batch
    sampler_alpha: float = 0.5         # sampled loss: q(i) ~ (count_i + 1) ** alpha
    logq: bool = True                  # subtract log q(i) (expected count) from every candidate's logit
    mask_history: bool = True          # items already in the input window are not negatives
    targets_per_sample: int = 1        # positives: the next m training events after the cut
    min_history: int = 1
    user_cap: int = 0                  # at most this many cut points per user per epoch (0 = all)
    dense_weight: float = 0.0          # weight of the auxiliary next-item loss at every raw position
    dense_positions: int = 16          # dense loss: at most this many positions per sample
    item_dropout: float = 0.0          # replace input items by OOV with this probability
    time_budget_s: float = 0           # stop training after this many seconds (0 = none)
    patience: int = 4                  # epochs without a val HR@100 gain before stopping
    eval_batch_size: int = 512
    grad_clip: float = 1.0


@dataclass
class RunConfig:
    model: str
    profile: str
    seed: int = 42
    threads: int = 2
    model_config: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(model: str, profile: str, path: str | Path | None = None) -> RunConfig:
    path = Path(path) if path else CONFIG_DIR / f"{model}.{profile}.json"
    raw = json.loads(path.read_text())
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw.get("train", {})) - known
    if unknown:
        raise ValueError(f"{path}: unknown train keys {sorted(unknown)}")
    return RunConfig(
        model=raw.get("model", model),
        profile=raw.get("profile", profile),
        seed=raw.get("seed", 42),
        threads=raw.get("threads", 2),
        model_config=raw.get("model_config", {}),
        train=TrainConfig(**raw.get("train", {})),
    )
