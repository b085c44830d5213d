"""Generative retrieval (docs/models.md): semantic IDs name every item exactly once, the constrained
beam search only returns real unseen items, and the quick profile publishes a version whose ONNX
graph matches PyTorch."""

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

from fixtures import write_tiny_dataset
from test_rank import write_content

import numpy as np
import torch

from recsys_trainer import store
from recsys_trainer.__main__ import main
from recsys_trainer.generative import (CodeTable, GenConfig, GenerativeRetriever, beam_search,
                                       build_semantic_ids, kmeans)


class SemanticIdTest(unittest.TestCase):
    def setUp(self):
        g = np.random.default_rng(0)
        self.n = 400
        self.content = g.standard_normal((self.n, 24))
        self.id_emb = g.standard_normal((self.n, 8))
        self.warm = g.random(self.n) < 0.8
        self.pop = g.integers(0, 50, size=self.n).astype(float)
        self.cfg = GenConfig(codebook_sizes=[4, 4, 4], collision_size=8, content_dims=6, kmeans_iters=5)

    def test_every_item_has_one_path_and_no_path_two_items(self):
        q, codes, stats = build_semantic_ids(self.cfg, self.content, self.id_emb, self.warm, self.pop,
                                             np.random.default_rng(1))
        coded = codes[codes[:, 0] >= 0]
        self.assertEqual(len({tuple(c) for c in coded}), len(coded))
        self.assertEqual(stats["items_without_code"], self.n - len(coded))
        self.assertTrue((coded[:, :3] < 4).all() and (coded[:, -1] < 8).all())
        # within a shared path, the more popular item gets the lower collision index
        for path in {tuple(c[:3]) for c in coded}:
            members = np.flatnonzero((codes[:, :3] == path).all(1))
            order = members[np.argsort(codes[members, -1])]
            self.assertTrue((np.diff(self.pop[order]) <= 0).all())

    def test_cold_items_are_coded_from_content_alone(self):
        q, codes, _ = build_semantic_ids(self.cfg, self.content, self.id_emb, self.warm, self.pop,
                                         np.random.default_rng(1))
        cold = np.flatnonzero(~self.warm & (codes[:, 0] >= 0))
        again = q.assign(q.from_content(self.content[cold]))
        np.testing.assert_array_equal(again, codes[cold, :3])

    def test_kmeans_separates_clusters(self):
        g = np.random.default_rng(2)
        x = np.concatenate([g.normal(c, 0.1, size=(50, 2)) for c in ((0, 0), (5, 5), (0, 5))])
        centres = kmeans(x, 3, 10, g)
        found = sorted(tuple(np.round(c).astype(int)) for c in centres)
        self.assertEqual(found, [(0, 0), (0, 5), (5, 5)])


class BeamSearchTest(unittest.TestCase):
    def test_results_are_distinct_real_items_and_never_seen_ones(self):
        torch.manual_seed(0)
        cfg = GenConfig(codebook_sizes=[3, 3], collision_size=2, dim=16, heads=2, encoder_layers=1,
                        decoder_layers=1, max_history=5)
        g = np.random.default_rng(0)
        codes = np.full((30, 3), -1)
        paths = [(a, b, k) for a in range(3) for b in range(3) for k in range(2)]
        chosen = g.choice(len(paths), size=12, replace=False)
        for row, p in zip(range(2, 14), chosen):
            codes[row] = paths[p]
        table = CodeTable(cfg.levels, codes)
        model = GenerativeRetriever(cfg, table.vocab).eval()
        tokens = table.tokens(codes)
        hist = torch.from_numpy(tokens[[[0, 0, 2, 3, 4]]])
        seen = torch.zeros(1, 30, dtype=torch.bool)
        seen[0, [2, 3, 4]] = True
        with torch.no_grad():
            items, scores = beam_search(model, table, hist, 50, seen)
        got = [i for i in items[0].tolist() if i >= 0]
        self.assertEqual(sorted(got), list(range(5, 14)))       # every coded unseen item, once
        self.assertTrue((np.diff(scores[0, : len(got)].numpy()) <= 1e-6).all())
        self.assertLessEqual(float(torch.logsumexp(scores[0, : len(got)], 0)), 1e-5)   # probabilities


class GenerativePipelineTest(unittest.TestCase):
    def test_quick_profile_publishes_a_servable_version(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            data = write_tiny_dataset(root / "tiny")
            st = root / "store"
            write_content(st, data)
            quiet = contextlib.redirect_stderr(io.StringIO())
            with contextlib.redirect_stdout(io.StringIO()), quiet:
                assert main(["train", "--profile", "quick", "--model", "kuaiformer", "--data", str(data),
                             "--store", str(st), "--no-baselines"]) == 0
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(main(["generative", "--profile", "quick", "--data", str(data), "--store", str(st)]), 0)
            summary = json.loads(out.getvalue())
            self.assertLess(summary["onnx_parity_max_abs_diff"], 1e-4)
            version = store.read_current(st, "generative")
            manifest = store.verify_version(st / "generative" / version)
            self.assertEqual(set(manifest["files"]),
                             {"encoder.onnx", "step.onnx", "codes.tsv", "projection.f32", "codebooks.f32", "weights.pt"})
            self.assertEqual(len(manifest["levels"]), 4)
            self.assertTrue(manifest["probes"] and all(p["top"] for p in manifest["probes"]))
            for probe in manifest["probes"]:
                self.assertFalse(set(probe["top"]) & set(probe["history"]))
            lines = (st / "generative" / version / "codes.tsv").read_text().splitlines()[1:]
            self.assertEqual(len({tuple(line.split("\t")[1:]) for line in lines}), len(lines))


if __name__ == "__main__":
    unittest.main()
