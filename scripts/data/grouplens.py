"""Convert an official GroupLens MovieLens download to the canonical format.

Accepted layouts in --dir:
  ratings.csv (userId,movieId,rating,timestamp) + movies.csv (movieId,title,genres)
      ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m (UTF-8 CSV, quoted titles)
  ratings.dat + movies.dat with '::' separators
      ml-1m (latin-1), ml-10m (UTF-8): UserID::MovieID::Rating::Timestamp,
      MovieID::Title::Genres

usage: grouplens.py --dir DIR --out DIR [--name NAME]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from canonical import log, split_title_year, write_dataset  # noqa: E402


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # ml-1m


def read_csv_layout(d: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    r = pd.read_csv(
        d / "ratings.csv",
        dtype={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
        usecols=["userId", "movieId", "rating", "timestamp"],
    )
    mv = pd.read_csv(
        io.StringIO(_decode((d / "movies.csv").read_bytes())),
        dtype={"movieId": "int64", "title": "str", "genres": "str"},
        keep_default_na=False,
    )
    return r, mv


def read_dat_layout(d: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = (d / "ratings.dat").read_bytes().replace(b"::", b"\t")
    r = pd.read_csv(
        io.BytesIO(raw),
        sep="\t",
        header=None,
        names=["userId", "movieId", "rating", "timestamp"],
        dtype={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    )
    rows = []
    for ln, line in enumerate(_decode((d / "movies.dat").read_bytes()).splitlines(), start=1):
        if not line.strip():
            continue
        head, sep1, rest = line.partition("::")
        title, sep2, genres = rest.rpartition("::")
        if not sep1 or not sep2:
            raise SystemExit(f"data: {d / 'movies.dat'}:{ln}: expected MovieID::Title::Genres")
        rows.append((int(head), title, genres))
    mv = pd.DataFrame(rows, columns=["movieId", "title", "genres"])
    return r, mv


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="")
    a = ap.parse_args(argv)
    d = Path(a.dir)
    t0 = time.time()
    if (d / "ratings.csv").is_file() and (d / "movies.csv").is_file():
        layout = "csv"
        r, mv = read_csv_layout(d)
    elif (d / "ratings.dat").is_file() and (d / "movies.dat").is_file():
        layout = "dat"
        r, mv = read_dat_layout(d)
    else:
        raise SystemExit(f"data: {d} has neither ratings.csv+movies.csv nor ratings.dat+movies.dat")
    log(f"read {d} ({layout}: {len(r)} ratings, {len(mv)} movies, {time.time() - t0:.1f}s)")

    title, year = split_title_year(mv["title"])
    items = pd.DataFrame({"item_id": mv["movieId"].to_numpy(), "title": title, "genres": mv["genres"], "year": year})
    inter = pd.DataFrame(
        {"user_id": r["userId"], "item_id": r["movieId"], "timestamp": r["timestamp"], "rating": r["rating"]}
    )
    write_dataset(
        Path(a.out),
        name=a.name or d.resolve().name,
        source="grouplens",
        interactions=inter,
        items=items,
        params={"grouplens_dir": str(d.resolve()), "layout": layout},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
