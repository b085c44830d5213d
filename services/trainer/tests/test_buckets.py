import math
import tempfile
import unittest
from pathlib import Path

from fixtures import write_tiny_dataset  # noqa: F401  (sets the import path)

import numpy as np

from recsys_trainer import buckets
from recsys_trainer.data import build_windows, load_dataset


class RatingBucketTest(unittest.TestCase):
    def test_half_stars(self):
        for r, want in [(0.5, 1), (1, 2), (1.5, 3), (2.5, 5), (3, 6), (3.5, 7), (4.5, 9), (5, 10)]:
            self.assertEqual(buckets.rating_bucket(r), want, r)
        np.testing.assert_array_equal(buckets.rating_buckets(np.array([0.5, 3.0, 5.0])), [1, 6, 10])

    def test_clipped_and_rounded_half_up(self):
        self.assertEqual(buckets.rating_bucket(0.0), 1)
        self.assertEqual(buckets.rating_bucket(7), 10)
        self.assertEqual(buckets.rating_bucket(1.25), 3)   # floor(2.5 + 0.5): half up, like Math.round
        self.assertEqual(buckets.rating_bucket(1.2), 2)

    def test_event_types(self):
        self.assertEqual([buckets.event_type_bucket(e) for e in
                          ["click", "like", "watch", "share", "skip", "dislike"]], [11, 12, 13, 14, 15, 16])
        self.assertEqual(buckets.NUM_RATING_BUCKETS, 17)


class GapBucketTest(unittest.TestCase):
    def test_rule(self):
        self.assertEqual(buckets.gap_bucket(None), 1)
        cases = [(0, 2), (59, 2), (60, 3), (179, 3), (180, 4), (420, 5), (3600, 7), (86400, 12),
                 (-5, 2), (10**12, 31)]
        for gap, want in cases:
            self.assertEqual(buckets.gap_bucket(gap), want, gap)
            self.assertEqual(int(buckets.gap_buckets_from_gaps(np.array([gap]))[0]), want, gap)
            if gap >= 0 and want < 31:
                self.assertEqual(want, 2 + math.floor(math.log2(1 + gap / 60)))
        self.assertEqual(buckets.NUM_GAP_BUCKETS, 32)


class WindowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ds = load_dataset(write_tiny_dataset(Path(cls.tmp.name) / "tiny"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_left_padded_and_first_event_of_window(self):
        ds = self.ds
        u = int(np.argmax(ds.lengths()))                       # a long user
        s, e = int(ds.offsets[u]), int(ds.offsets[u + 1])
        L = 16
        for cut in (s + 1, s + 5, s + L, e):                   # shorter than, equal to, longer than L
            it, rb, gb = build_windows(ds, np.array([s]), np.array([cut]), L)
            n = min(cut - s, L)
            self.assertTrue((it[0, :L - n] == 0).all() and (rb[0, :L - n] == 0).all() and (gb[0, :L - n] == 0).all())
            np.testing.assert_array_equal(it[0, L - n:], ds.items[cut - n:cut])   # most recent at L-1
            np.testing.assert_array_equal(rb[0, L - n:], ds.ratings[cut - n:cut])
            self.assertEqual(gb[0, L - n], buckets.GAP_FIRST)   # oldest event in the window, even mid-history
            for j in range(1, n):
                pos = cut - n + j
                want = buckets.gap_bucket(float(ds.timestamps[pos] - ds.timestamps[pos - 1]))
                self.assertEqual(gb[0, L - n + j], want)

    def test_vocab(self):
        ds = self.ds
        lines = ds.vocab_tsv().splitlines()
        self.assertEqual(lines[0], "index\titem_id")
        self.assertEqual(len(lines) - 1, ds.vocab_size - 2)
        self.assertEqual(lines[1].split("\t")[0], "2")
        self.assertEqual(ds.vocab_size, 300 + 2)               # catalogue items without events included


if __name__ == "__main__":
    unittest.main()
