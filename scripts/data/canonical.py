"""Canonical dataset writer shared by every data source.

Output directory layout (see docs/data.md):
  interactions.tsv  user_id  item_id  timestamp  rating
  items.tsv         item_id  title  genres  year
  manifest.json     counts, timestamp range, sha256 of both files

The manifest is written last (atomically), so a directory with a valid
manifest is always complete.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from manifest import MANIFEST, sha256_file

INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "rating"]
ITEM_COLUMNS = ["item_id", "title", "genres", "year"]
NO_GENRES = "(no genres listed)"

# "Toy Story (1995)", "Babylon 5 (1994-1998)", "Foo (2006–2007) " -> title, first year
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$", re.S)
_CTRL_WS = re.compile(r"[\t\r\n\v\f]")


def log(msg: str) -> None:
    print(f"data: {msg}", file=sys.stderr, flush=True)


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split MovieLens-style 'Title (1995)' into ('Title', 1995). Titles without a
    trailing year are kept whole with an empty (NA) year."""
    titles = titles.fillna("").astype(str)
    ext = titles.str.extract(_TITLE_YEAR)
    has = ext["year"].notna()
    out_title = titles.where(~has, ext["title"])
    year = pd.to_numeric(ext["year"], errors="coerce").astype("Int64")
    return out_title, year


def clean_text(s: pd.Series) -> pd.Series:
    """NA -> '', tabs/newlines -> spaces, surrounding whitespace stripped."""
    x = s.fillna("").astype(str)
    bad = x.str.contains(_CTRL_WS)
    if bad.any():
        x[bad] = x[bad].str.replace(_CTRL_WS, " ", regex=True)
    return pd.Series([v.strip() for v in x.tolist()], index=s.index, dtype=object)


def clean_genres(s: pd.Series) -> pd.Series:
    codes, uniq = pd.factorize(s.fillna("").astype(str))  # few distinct genre strings
    u = np.array(clean_text(pd.Series(uniq, dtype=object)).tolist() + [""], dtype=object)[:-1]
    u[u == NO_GENRES] = ""
    return pd.Series(u[codes] if len(u) else np.full(len(s), "", dtype=object), index=s.index, dtype=object)


def sorted_unique(a: np.ndarray) -> np.ndarray:
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) else a


def format_ratings(r: np.ndarray) -> np.ndarray:
    """4.0 -> '4', 4.5 -> '4.5' (shortest round-trip form, one decimal at most
    for MovieLens half stars). Implicit data passes 1 -> '1'."""
    r = np.asarray(r, dtype=np.float64)
    uniq, inv = np.unique(r, return_inverse=True)
    strs = []
    for v in uniq:
        if not np.isfinite(v):
            raise ValueError(f"non-finite rating {v}")
        strs.append(str(int(v)) if float(v).is_integer() else repr(float(v)))
    return np.asarray(strs, dtype=object)[inv]


def _packed(hi: np.ndarray, lo: np.ndarray) -> np.ndarray | None:
    """(hi, lo) packed into one int64 that sorts like the pair, or None if it
    would overflow."""
    hmin, lmin = int(hi.min()), int(lo.min())
    hspan, lspan = int(hi.max()) - hmin + 1, int(lo.max()) - lmin + 1
    if hspan * lspan >= 2**62:
        return None
    return (hi - hmin) * lspan + (lo - lmin)


def _stable_order(*keys: np.ndarray) -> np.ndarray:
    """Like np.lexsort(keys) (last key primary, stable), as successive stable
    argsorts, which is 2-3x faster than lexsort for a few million rows."""
    order = np.argsort(keys[0], kind="stable")
    for k in keys[1:]:
        order = order[np.argsort(k[order], kind="stable")]
    return order


def normalise_interactions(df: pd.DataFrame) -> pd.DataFrame:
    """Deduplicate (user,item) keeping the latest event (for equal timestamps
    the later input row), then sort by user_id, timestamp, item_id (numeric)."""
    u = df["user_id"].to_numpy(np.int64)
    i = df["item_id"].to_numpy(np.int64)
    t = df["timestamp"].to_numpy(np.int64)
    r = df["rating"].to_numpy(np.float64)
    n = len(u)
    if n == 0:
        return pd.DataFrame({"user_id": u, "item_id": i, "timestamp": t, "rating": r})
    ui = _packed(u, i)
    order = _stable_order(t, ui) if ui is not None else _stable_order(t, i, u)
    us, is_ = u[order], i[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = (us[1:] != us[:-1]) | (is_[1:] != is_[:-1])
    keep = order[last]  # (u,t,i) is unique after this, so the final order needs no tie-break
    dropped = n - len(keep)
    if dropped:
        log(f"dropped {dropped} repeated (user,item) events, kept the latest of each")
    u, i, t, r = u[keep], i[keep], t[keep], r[keep]
    ut = _packed(u, t)
    order = _stable_order(i, ut) if ut is not None else _stable_order(i, t, u)
    return pd.DataFrame({"user_id": u[order], "item_id": i[order], "timestamp": t[order], "rating": r[order]})


def normalise_items(items: pd.DataFrame, needed_ids: np.ndarray) -> pd.DataFrame:
    items = items.copy()
    items["item_id"] = items["item_id"].astype(np.int64)
    items = items.drop_duplicates("item_id", keep="first")
    have = np.sort(items["item_id"].to_numpy(np.int64))
    pos = np.minimum(np.searchsorted(have, needed_ids), max(len(have) - 1, 0))
    missing = needed_ids[have[pos] != needed_ids] if len(have) else needed_ids
    if len(missing):
        log(f"{len(missing)} items appear in interactions but not in the item file; written with empty metadata")
        items = pd.concat(
            [
                items,
                pd.DataFrame(
                    {
                        "item_id": missing,
                        "title": "",
                        "genres": "",
                        "year": pd.array([pd.NA] * len(missing), dtype="Int64"),
                    }
                ),
            ],
            ignore_index=True,
        )
    items["title"] = clean_text(items["title"])
    items["genres"] = clean_genres(items["genres"])
    items["year"] = pd.to_numeric(items["year"], errors="coerce").astype("Int64")
    return items.sort_values("item_id", kind="stable").reset_index(drop=True)[ITEM_COLUMNS]


def _atomic_write_tsv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, sep="\t", index=False, lineterminator="\n", quoting=csv.QUOTE_NONE, na_rep="", encoding="utf-8")
    os.replace(tmp, path)


def write_dataset(
    out_dir: Path,
    *,
    name: str,
    source: str,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    params: dict | None = None,
) -> dict:
    """Write the canonical files and manifest. `interactions` needs columns
    user_id,item_id (integers), timestamp (unix seconds), rating (float);
    `items` needs item_id,title,genres,year. Items without interactions are
    kept (they are part of the catalogue)."""
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    man_path = out_dir / MANIFEST
    if man_path.exists():
        man_path.unlink()  # the directory is invalid until the new manifest lands

    inter = normalise_interactions(interactions)
    if len(inter) == 0:
        raise SystemExit("data: no interactions to write")
    items = normalise_items(items, sorted_unique(inter["item_id"].to_numpy()))

    inter_out = pd.DataFrame(
        {
            "user_id": inter["user_id"].to_numpy(),
            "item_id": inter["item_id"].to_numpy(),
            "timestamp": inter["timestamp"].to_numpy(),
            "rating": format_ratings(inter["rating"].to_numpy()),
        }
    )
    _atomic_write_tsv(inter_out, out_dir / "interactions.tsv")
    _atomic_write_tsv(items, out_dir / "items.tsv")

    manifest = {
        "name": name,
        "source": source,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "num_users": int(len(sorted_unique(inter["user_id"].to_numpy()))),
        "num_items": int(len(items)),
        "num_interactions": int(len(inter)),
        "min_timestamp": int(inter["timestamp"].min()),
        "max_timestamp": int(inter["timestamp"].max()),
        "files": {
            "interactions.tsv": sha256_file(out_dir / "interactions.tsv"),
            "items.tsv": sha256_file(out_dir / "items.tsv"),
        },
        # extra keys (readers may ignore them)
        "num_items_with_interactions": int(len(sorted_unique(inter["item_id"].to_numpy()))),
        "params": params or {},
    }
    tmp = man_path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, man_path)
    log(
        f"wrote {out_dir}: {manifest['num_interactions']} interactions, {manifest['num_users']} users, "
        f"{manifest['num_items']} items ({time.time() - t0:.1f}s to write)"
    )
    return manifest
