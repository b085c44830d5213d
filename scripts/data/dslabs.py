"""Decode MovieLens ml-latest-small from Debian's r-cran-dslabs package.

The package keeps its data sets in an R lazy-load database:
  data/Rdata.rdx  a (compressed) R-serialised list; $variables maps each object
                  name to c(offset, length) inside Rdata.rdb
  data/Rdata.rdb  concatenated chunks; each chunk is a 4-byte big-endian
                  uncompressed length followed by the compressed serialisation
                  (zlib when $compressed is TRUE; types 2/3 add a type byte)
The chunk decodes with the `rdata` package into a pandas DataFrame
(columns movieId, title, year, genres, userId, rating, timestamp).

usage: dslabs.py --pkg-root DIR --out DIR [--package-version V]
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import lzma
import struct
import sys
import time
import warnings
import zlib
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from canonical import log, write_dataset  # noqa: E402

EXPECTED = {"num_interactions": 100004, "num_users": 671, "num_items": 9066}


def _decompress_file(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


def _parse_r(data: bytes):
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown file type: assumed RDS" for bare serialisations
        parsed = rdata.parser.parse_data(data)
        return rdata.conversion.convert(parsed)


def _decompress_chunk(chunk: bytes, compressed: int) -> bytes:
    (length,) = struct.unpack(">I", chunk[:4])
    if compressed == 1:
        out = zlib.decompress(chunk[4:])
    elif compressed in (2, 3):  # R_decompress2/3: type byte then payload
        kind, payload = chunk[4:5], chunk[5:]
        if kind == b"0":
            out = payload
        elif kind == b"Z":
            out = zlib.decompress(payload)
        elif kind == b"2":
            out = bz2.decompress(payload)
        elif kind == b"X":
            out = lzma.decompress(payload)
        else:
            raise ValueError(f"unknown lazy-load chunk type {kind!r}")
    else:
        out = chunk[4:]
    if len(out) != length:
        raise ValueError(f"lazy-load chunk: expected {length} bytes, got {len(out)}")
    return out


def read_lazyload_object(data_dir: Path, name: str):
    index = _parse_r(_decompress_file((data_dir / "Rdata.rdx").read_bytes()))
    variables = index["variables"]
    key = next((k for k in variables if str(k) == name), None)
    if key is None:
        raise KeyError(f"{name!r} not in {data_dir / 'Rdata.rdx'} (has: {', '.join(map(str, variables))})")
    offset, length = (int(x) for x in variables[key])
    comp = index.get("compressed", [True])
    comp = comp[0] if hasattr(comp, "__len__") else comp
    comp = comp.item() if hasattr(comp, "item") else comp  # numpy scalar -> bool/int
    comp = int(comp)  # TRUE -> 1 (zlib), 2/3 -> typed chunks, FALSE -> 0
    with open(data_dir / "Rdata.rdb", "rb") as f:
        f.seek(offset)
        chunk = f.read(length)
    return _parse_r(_decompress_chunk(chunk, comp))


def find_data_dir(pkg_root: Path) -> Path:
    for cand in sorted(Path(pkg_root).glob("usr/lib/R/site-library/dslabs/data")) + sorted(
        Path(pkg_root).glob("**/dslabs/data")
    ):
        if (cand / "Rdata.rdx").is_file() and (cand / "Rdata.rdb").is_file():
            return cand
    raise FileNotFoundError(f"no dslabs/data/Rdata.rdx under {pkg_root}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pkg-root", required=True, help="directory the .deb was extracted into (dpkg-deb -x)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--package-version", default="")
    a = ap.parse_args(argv)

    t0 = time.time()
    df = read_lazyload_object(find_data_dir(Path(a.pkg_root)), "movielens")
    if not isinstance(df, pd.DataFrame):
        raise SystemExit(f"data: movielens decoded to {type(df).__name__}, expected a data frame")
    log(f"decoded dslabs::movielens ({len(df)} rows, {time.time() - t0:.1f}s)")

    inter = pd.DataFrame(
        {
            "user_id": df["userId"].astype("int64"),
            "item_id": df["movieId"].astype("int64"),
            "timestamp": df["timestamp"].astype("int64"),
            "rating": df["rating"].astype("float64"),
        }
    )
    items = df.drop_duplicates("movieId")[["movieId", "title", "genres", "year"]].rename(columns={"movieId": "item_id"})
    # dslabs already split the year out of the title (title has no "(1995)").
    items = pd.DataFrame(
        {
            "item_id": items["item_id"].astype("int64").to_numpy(),
            "title": items["title"].astype("object").to_numpy(),
            "genres": items["genres"].astype("object").to_numpy(),
            "year": items["year"].astype("Int64").to_numpy(),
        }
    )
    m = write_dataset(
        Path(a.out),
        name="ml-latest-small",
        source="dslabs",
        interactions=inter,
        items=items,
        params={"package": "r-cran-dslabs", "package_version": a.package_version, "object": "movielens"},
    )
    bad = {k: (m[k], v) for k, v in EXPECTED.items() if m[k] != v}
    if bad:
        log(f"WARNING: counts differ from the known ml-latest-small figures: {bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
