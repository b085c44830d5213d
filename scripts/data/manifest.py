"""Manifest helpers. Standard library only: scripts/data.sh runs this with the
system python3 before the venv exists, so the 'already there' check is fast.

CLI:
  python3 manifest.py check OUT_DIR [--source S] [--params JSON]
      exit 0 if OUT_DIR holds a complete dataset whose manifest matches the
      source and (a subset of) params and whose file hashes match; else 1.
  python3 manifest.py validate OUT_DIR
      full content check (headers, sort order, uniqueness, counts vs manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

MANIFEST = "manifest.json"
FILES = ("interactions.tsv", "items.tsv")
REQUIRED_KEYS = (
    "name",
    "source",
    "created_at",
    "num_users",
    "num_items",
    "num_interactions",
    "min_timestamp",
    "max_timestamp",
    "files",
)
INTERACTIONS_HEADER = "user_id\titem_id\ttimestamp\trating"
ITEMS_HEADER = "item_id\ttitle\tgenres\tyear"


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def load(out_dir: Path) -> dict | None:
    try:
        m = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or any(k not in m for k in REQUIRED_KEYS):
        return None
    return m


def check(out_dir: Path, source: str | None = None, params: dict | None = None) -> tuple[bool, str]:
    out_dir = Path(out_dir)
    m = load(out_dir)
    if m is None:
        return False, "no valid manifest"
    if source and m.get("source") != source:
        return False, f"manifest source is {m.get('source')!r}, wanted {source!r}"
    have = m.get("params") or {}
    for k, v in (params or {}).items():
        if have.get(k) != v:
            return False, f"manifest param {k}={have.get(k)!r}, wanted {v!r}"
    files = m.get("files") or {}
    for name in FILES:
        p = out_dir / name
        if name not in files or not p.is_file():
            return False, f"{name} missing"
        if sha256_file(p) != files[name]:
            return False, f"{name} does not match its manifest hash"
    return True, "ok"


def validate(out_dir: Path) -> list[str]:
    """Full content check; returns a list of problems (empty = fine)."""
    out_dir = Path(out_dir)
    errs: list[str] = []
    ok, why = check(out_dir)
    if not ok:
        return [why]
    m = load(out_dir)
    users: set[str] = set()
    inter_items: set[int] = set()
    n = 0
    prev = None
    seen_pairs: set[tuple[int, int]] = set()
    tmin, tmax = None, None
    with open(out_dir / "interactions.tsv", encoding="utf-8", newline="\n") as f:
        if f.readline().rstrip("\n") != INTERACTIONS_HEADER:
            errs.append("interactions.tsv: bad header")
        for ln, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                errs.append(f"interactions.tsv:{ln}: {len(parts)} fields")
                break
            u, i, t = int(parts[0]), int(parts[1]), int(parts[2])
            float(parts[3])
            key = (u, t, i)
            if prev is not None and key <= prev:
                errs.append(f"interactions.tsv:{ln}: not sorted by (user_id, timestamp, item_id) or duplicate")
                break
            if prev is None or u != prev[0]:
                seen_pairs = set()
            if i in seen_pairs:
                errs.append(f"interactions.tsv:{ln}: repeated (user,item)")
                break
            seen_pairs.add(i)
            prev = key
            users.add(parts[0])
            inter_items.add(i)
            tmin = t if tmin is None else min(tmin, t)
            tmax = t if tmax is None else max(tmax, t)
            n += 1
    item_ids: list[int] = []
    with open(out_dir / "items.tsv", encoding="utf-8", newline="\n") as f:
        if f.readline().rstrip("\n") != ITEMS_HEADER:
            errs.append("items.tsv: bad header")
        for ln, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                errs.append(f"items.tsv:{ln}: {len(parts)} fields")
                break
            item_ids.append(int(parts[0]))
            if parts[3] and not parts[3].isdigit():
                errs.append(f"items.tsv:{ln}: bad year {parts[3]!r}")
                break
            if parts[2] == "(no genres listed)":
                errs.append(f"items.tsv:{ln}: '(no genres listed)' should be empty")
                break
    if item_ids != sorted(set(item_ids)):
        errs.append("items.tsv: item_id not strictly increasing")
    missing = inter_items - set(item_ids)
    if missing:
        errs.append(f"items.tsv: {len(missing)} interacted items missing")
    expect = {
        "num_interactions": n,
        "num_users": len(users),
        "num_items": len(item_ids),
        "min_timestamp": tmin,
        "max_timestamp": tmax,
    }
    for k, v in expect.items():
        if m.get(k) != v:
            errs.append(f"manifest {k}={m.get(k)} but files say {v}")
    return errs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="manifest.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("out_dir")
    c.add_argument("--source")
    c.add_argument("--params", default="{}")
    v = sub.add_parser("validate")
    v.add_argument("out_dir")
    a = ap.parse_args(argv)
    if a.cmd == "check":
        ok, why = check(Path(a.out_dir), a.source, json.loads(a.params))
        if not ok:
            print(why)
        return 0 if ok else 1
    errs = validate(Path(a.out_dir))
    for e in errs:
        print(f"{a.out_dir}: {e}", file=sys.stderr)
    if not errs:
        m = load(Path(a.out_dir))
        counts = f"{m['num_interactions']} interactions, {m['num_users']} users, {m['num_items']} items"
        print(f"{a.out_dir}: valid ({counts})", file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
