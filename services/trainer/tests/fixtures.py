"""Shared test helpers: import path and a tiny deterministic dataset in the canonical format."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TRAINER_DIR = Path(__file__).resolve().parents[1]
if str(TRAINER_DIR) not in sys.path:
    sys.path.insert(0, str(TRAINER_DIR))

import numpy as np  # noqa: E402

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


def write_tiny_dataset(out: Path, users: int = 120, items: int = 300, seed: int = 7) -> Path:
    """Users with clustered tastes, sessions with gaps from seconds to weeks, half-star ratings.
    A few users are longer than any window so the compression path is trained, and the
    catalogue lists items nobody rated (they get vocabulary rows too)."""
    g = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    item_ids = np.sort(g.choice(np.arange(1, 10 * items), size=items, replace=False))
    item_genre = g.integers(0, len(GENRES), size=items)
    with open(out / "items.tsv", "w") as f:
        f.write("item_id\ttitle\tgenres\tyear\n")
        for i, (iid, gi) in enumerate(zip(item_ids, item_genre)):
            genres = GENRES[gi] if i % 17 else f"{GENRES[gi]}|{GENRES[(gi + 1) % len(GENRES)]}"
            if i % 29 == 0:
                genres = ""
            f.write(f"{iid}\tItem {iid}\t{genres}\t{1990 + i % 30}\n")
    rated = items - 20  # the last 20 catalogue items have no interactions
    rows = []
    for u in range(1, users + 1):
        n = int(g.integers(6, 40)) if u % 10 else int(g.integers(80, 140))
        taste = g.integers(0, len(GENRES))
        pool = np.flatnonzero((item_genre[:rated] == taste) | (g.random(rated) < 0.15))
        chosen = g.choice(pool, size=min(n, len(pool)), replace=False)
        ts = 1_000_000_000 + int(g.integers(0, 10**7))
        for c in chosen:
            ts += int(g.choice([0, 3, 40, 600, 7200, 86400 * 3]))
            rows.append((u, int(item_ids[c]), ts, float(g.integers(1, 11)) / 2))
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    with open(out / "interactions.tsv", "w") as f:
        f.write("user_id\titem_id\ttimestamp\trating\n")
        for u, i, t, r in rows:
            f.write(f"{u}\t{i}\t{t}\t{r:g}\n")
    return out


def write_replay(data_dir: Path, out: Path, contexts: int = 3, candidates: int = 40, seed: int = 11) -> Path:
    """A recall replay file in the format of services/gateway/src/eval/replay-cli.ts for a dataset:
    per user, the `contexts` events before the held-out last one, each with `candidates` catalogue
    items the user had not rated before the moment (the moment's own item among them half the time).
    The real replay runs the recall service; these tests exercise what the trainer does with its file."""
    g = np.random.default_rng(seed)
    items = [line.split("\t")[0] for line in (data_dir / "items.tsv").read_text().splitlines()[1:] if line]
    rows: dict[str, list[tuple[str, int, str]]] = {}
    for line in (data_dir / "interactions.tsv").read_text().splitlines()[1:]:
        if line:
            u, i, t, r = line.split("\t")
            rows.setdefault(u, []).append((i, int(t), r))
    lines = [json.dumps({"channels": ["kuaiformer", "swing", "popular"], "contexts": contexts})]
    for u, events in rows.items():
        events.sort(key=lambda e: e[1])
        for at in range(max(1, len(events) - 1 - contexts), len(events) - 1):
            item, t, rating = events[at]
            seen = {e[0] for e in events[:at]}
            pool = [x for x in items if x not in seen and x != item]
            cands = list(g.choice(pool, size=candidates - 1, replace=False))
            if g.random() < 0.5:
                cands.insert(int(g.integers(0, len(cands) + 1)), item)
            masks = [int(g.integers(1, 8)) for _ in cands]
            scores = [f"{x:.4f}" for x in np.sort(g.random(len(cands)))[::-1]]
            lines.append("\t".join([u, str(t * 1000), item, rating, ",".join(cands), ",".join(map(str, masks)),
                                     ",".join(scores)]))
    out.write_text("\n".join(lines) + "\n")
    return out
