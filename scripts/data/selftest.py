"""Tests for the data layer (stdlib unittest; needs the venv for pandas/numpy).

  .venv/bin/python scripts/data/selftest.py        # or: -m unittest discover -s scripts/data -p selftest.py

Builds everything in a temp dir through scripts/data.sh. The GroupLens tests
take a slice of data/ml-latest-small when it exists (run `npm run data`
first), else of a small synthetic data set, and write it back out in both
GroupLens layouts (ratings.csv/movies.csv and ml-1m ratings.dat/movies.dat),
then check that the conversion reproduces the slice exactly.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/data free of __pycache__
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402
from canonical import split_title_year  # noqa: E402
from manifest import check, load, validate  # noqa: E402

DATA_SH = ROOT / "scripts" / "data.sh"
ML_SMALL = ROOT / "data" / "ml-latest-small"


def run_data(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run(["bash", str(DATA_SH), *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"data.sh {' '.join(args)} failed:\n{p.stderr}")
    return p


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)


class TitleYear(unittest.TestCase):
    def test_split(self):
        cases = {
            "Toy Story (1995)": ("Toy Story", 1995),
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)": (
                "City of Lost Children, The (Cité des enfants perdus, La)",
                1995,
            ),
            "Babylon 5 (1994-1998)": ("Babylon 5", 1994),
            "Big Bang Theory, The (2007-)": ("Big Bang Theory, The", 2007),
            "Blind Side, The  (2009)": ("Blind Side, The", 2009),
            "Hyena Road": ("Hyena Road", None),
            "1900 (Novecento) (1976) ": ("1900 (Novecento)", 1976),
            "Synthetic item 3 (cluster 7)": ("Synthetic item 3 (cluster 7)", None),
        }
        t, y = split_title_year(pd.Series(list(cases)))
        for (k, (et, ey)), got_t, got_y in zip(cases.items(), t, y, strict=True):
            self.assertEqual(got_t.strip(), et, k)
            self.assertEqual(None if pd.isna(got_y) else int(got_y), ey, k)


class Synthetic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="data-selftest-"))
        cls.args = [
            "--source",
            "synthetic",
            "--users",
            "300",
            "--items",
            "2000",
            "--events",
            "20000",
            "--clusters",
            "12",
        ]
        cls.out = cls.tmp / "syn"
        run_data(*cls.args, "--seed", "7", "--out", str(cls.out))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_valid_and_counts(self):
        self.assertEqual(validate(self.out), [])
        m = load(self.out)
        self.assertEqual(m["source"], "synthetic")
        self.assertEqual(m["num_users"], 300)
        self.assertEqual(m["num_items"], 2000)  # whole catalogue, interacted or not
        self.assertGreater(m["num_interactions"], 19000)
        self.assertLessEqual(m["num_interactions"], 20000)

    def test_idempotent_and_deterministic(self):
        t = time.time()
        p = run_data(*self.args, "--seed", "7", "--out", str(self.out))
        self.assertIn("up to date", p.stderr)
        self.assertLess(time.time() - t, 1.0)
        other = self.tmp / "syn2"
        run_data(*self.args, "--seed", "7", "--out", str(other))
        self.assertEqual(load(other)["files"], load(self.out)["files"])
        # changing a parameter on the same dir rebuilds
        run_data(*self.args, "--seed", "8", "--out", str(other))
        self.assertNotEqual(load(other)["files"], load(self.out)["files"])
        self.assertEqual(load(other)["params"]["seed"], 8)

    def test_signal(self):
        inter = pd.read_csv(self.out / "interactions.tsv", sep="\t")
        items = read_tsv(self.out / "items.tsv")
        self.assertTrue(items["title"].str.match(r"^Synthetic item \d+ \(cluster \d+\)$").all())
        self.assertTrue((items["genres"] != "").all())
        self.assertTrue(inter["rating"].between(1, 5).all())
        # popularity is skewed (Zipf): top 1% of items get a large share of events
        pop = inter["item_id"].value_counts()
        self.assertGreater(pop.head(20).sum() / len(inter), 0.05)  # uniform would be 0.01
        # genre signal: a user's events concentrate on few genres
        g = inter.merge(items[["item_id", "genres"]].astype({"item_id": "int64"}), on="item_id")
        g["g0"] = g["genres"].str.split("|").str[0]
        top_share = g.groupby("user_id")["g0"].agg(lambda s: s.value_counts(normalize=True).iloc[0]).mean()
        self.assertGreater(top_share, 0.3)
        # sessions: many consecutive gaps are short, some are long
        gaps = inter.groupby("user_id")["timestamp"].diff().dropna()
        self.assertGreater((gaps < 600).mean(), 0.5)
        self.assertGreater((gaps > 86400).mean(), 0.03)


class GroupLens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="data-selftest-gl-"))
        base = ML_SMALL
        if not check(base)[0]:
            base = cls.tmp / "base"
            run_data("--source", "synthetic", "--users", "50", "--items", "500", "--events", "2000", "--out", str(base))
        cls.base_name = load(base)["source"]
        inter = read_tsv(base / "interactions.tsv")
        items = read_tsv(base / "items.tsv")
        users = sorted(inter["user_id"].astype(int).unique())[:4]
        cls.inter = inter[inter["user_id"].astype(int).isin(users)].reset_index(drop=True)
        need = set(cls.inter["item_id"])
        # the slice's items plus two catalogue items nobody rated
        extra = [i for i in items["item_id"] if i not in need][:2]
        cls.items = items[items["item_id"].isin(need | set(extra))].reset_index(drop=True)
        assert 100 <= len(cls.inter) <= 2000, len(cls.inter)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def _gl_rows(self):
        """GroupLens-style rows in shuffled order, plus an older duplicate rating."""
        rows = [
            (r.user_id, r.item_id, f"{float(r.rating):.1f}", r.timestamp) for r in self.inter.itertuples(index=False)
        ]
        first = rows[0]
        rows.append((first[0], first[1], "0.5", str(int(first[3]) - 1000)))  # older repeat, must be dropped
        random.Random(1).shuffle(rows)
        movies = []
        for r in self.items.itertuples(index=False):
            title = f"{r.title} ({r.year})" if r.year else r.title
            movies.append((r.item_id, title, r.genres or "(no genres listed)"))
        return rows, movies

    def _check_out(self, out: Path, title_fn=lambda s: s):
        self.assertEqual(validate(out), [])
        got_i = read_tsv(out / "interactions.tsv")
        pd.testing.assert_frame_equal(got_i, self.inter)
        got_m = read_tsv(out / "items.tsv")
        want_m = self.items.copy()
        want_m["title"] = want_m["title"].map(title_fn)
        pd.testing.assert_frame_equal(got_m, want_m)
        m = load(out)
        self.assertEqual(m["source"], "grouplens")
        self.assertEqual(m["num_interactions"], len(self.inter))
        self.assertEqual(m["num_items"], len(self.items))

    def test_csv_layout(self):
        d = self.tmp / "ml-csv"
        d.mkdir()
        rows, movies = self._gl_rows()
        with open(d / "ratings.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["userId", "movieId", "rating", "timestamp"])
            w.writerows(rows)
        with open(d / "movies.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")  # quotes titles with commas / quotes
            w.writerow(["movieId", "title", "genres"])
            w.writerows(movies)
        out = self.tmp / "out-csv"
        run_data("--source", "grouplens", "--grouplens-dir", str(d), "--out", str(out))
        self._check_out(out)
        p = run_data("--source", "grouplens", "--grouplens-dir", str(d), "--out", str(out))
        self.assertIn("up to date", p.stderr)

    def test_dat_layout_latin1(self):
        d = self.tmp / "ml-1m-like"
        d.mkdir()
        rows, movies = self._gl_rows()
        with open(d / "ratings.dat", "w", encoding="latin-1", newline="\n") as f:
            for u, i, r, t in rows:
                f.write(f"{u}::{i}::{int(float(r))}::{t}\n" if float(r).is_integer() else f"{u}::{i}::{r}::{t}\n")

        def latin1(s: str) -> str:
            return s.encode("latin-1", errors="replace").decode("latin-1")

        with open(d / "movies.dat", "wb") as f:
            for i, title, genres in movies:
                f.write(f"{i}::{title}::{genres}\n".encode("latin-1", errors="replace"))
        out = self.tmp / "out-dat"
        run_data("--source", "grouplens", "--grouplens-dir", str(d), "--out", str(out))
        self._check_out(out, latin1)


class DefaultDataset(unittest.TestCase):
    @unittest.skipUnless(check(ML_SMALL)[0], "data/ml-latest-small not built (npm run data)")
    def test_ml_latest_small_counts(self):
        m = load(ML_SMALL)
        if m["source"] != "dslabs":
            self.skipTest("data/ml-latest-small was not built from dslabs")
        self.assertEqual(
            (m["num_interactions"], m["num_users"], m["num_items"]),
            (100004, 671, 9066),
        )
        self.assertEqual(time.gmtime(m["min_timestamp"]).tm_year, 1995)
        self.assertEqual(time.gmtime(m["max_timestamp"]).tm_year, 2016)
        self.assertEqual(validate(ML_SMALL), [])
        items = read_tsv(ML_SMALL / "items.tsv")
        self.assertFalse(items["title"].str.contains(r"\(\d{4}\)\s*$").any())
        self.assertEqual(items.loc[items["item_id"] == "1", "title"].item(), "Toy Story")
        self.assertEqual(items.loc[items["item_id"] == "1", "year"].item(), "1995")


if __name__ == "__main__":
    unittest.main(verbosity=1)
