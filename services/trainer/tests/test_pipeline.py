"""End to end: the quick profile trains both models into a temporary store through the CLI,
and the result is a loadable version as the serving side reads it (docs/models.md)."""

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

from fixtures import write_tiny_dataset

import numpy as np

from recsys_trainer import store
from recsys_trainer.__main__ import main
from recsys_trainer.export import INPUT_NAMES, onnx_session


class QuickProfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.data = write_tiny_dataset(root / "tiny")
        cls.store = root / "store"
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["train", "--profile", "quick", "--model", "all", "--data", str(cls.data),
                       "--store", str(cls.store)])
        assert rc == 0, rc
        cls.summary = json.loads(out.getvalue())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def version_dir(self, model):
        version = store.read_current(self.store, model)
        self.assertEqual(version, self.summary[model]["version"])
        self.assertTrue(version.endswith("-quick"))
        return self.store / model / version

    def test_manifest_and_files(self):
        for model, k in (("kuaiformer", 4), ("sasrec", 1)):
            with self.subTest(model=model):
                vdir = self.version_dir(model)
                manifest = store.verify_version(vdir)          # every checksum matches
                files = ["item_embeddings.f32", "item_vocab.tsv", "model.onnx", "weights.pt"]
                self.assertEqual(sorted(manifest["files"]), files)
                self.assertEqual(sorted(p.name for p in vdir.iterdir()), sorted([*files, "manifest.json"]))
                L, K, D, N = (manifest[key] for key in ("max_seq_len", "num_interests", "embedding_dim", "vocab_size"))
                self.assertEqual(K, k)
                self.assertEqual(N, 302)
                self.assertEqual(manifest["signature"]["inputs"],
                                 [{"name": n, "dtype": "int64", "shape": ["batch", L]} for n in INPUT_NAMES])
                self.assertEqual(manifest["signature"]["outputs"],
                                 [{"name": "interests", "dtype": "float32", "shape": ["batch", K, D]}])
                self.assertEqual(manifest["item_vocab_sha256"], manifest["files"]["item_vocab.tsv"])
                self.assertLessEqual(manifest["onnx_parity_max_abs_diff"], 1e-4)
                self.assertEqual(manifest["data"]["split"], "per-user last-1 holdout")
                self.assertIn("val_hr@100", manifest["metrics"])
                self.assertIn("train_seconds", manifest["metrics"])
                self.assertEqual(manifest["buckets"]["rating"]["num_buckets"], 17)
                self.assertEqual(manifest["buckets"]["gap"]["num_buckets"], 32)

                emb = np.fromfile(vdir / "item_embeddings.f32", dtype="<f4")
                self.assertEqual(emb.size, N * D)
                emb = emb.reshape(N, D)
                self.assertTrue((emb[:2] == 0).all())
                np.testing.assert_allclose(np.linalg.norm(emb[2:], axis=1), 1.0, atol=1e-5)
                vocab = (vdir / "item_vocab.tsv").read_text().splitlines()
                self.assertEqual(vocab[0], "index\titem_id")
                self.assertEqual([int(line.split("\t")[0]) for line in vocab[1:]], list(range(2, N)))

                sess = onnx_session(vdir / "model.onnx")
                for b in (1, 3):                               # dynamic batch
                    feeds = {n: np.zeros((b, L), np.int64) for n in INPUT_NAMES}
                    feeds["item_idx"][:, -3:] = [[5, 1, 9]]    # 1 = out of vocabulary
                    feeds["rating_bucket"][:, -3:] = [[8, 11, 10]]
                    feeds["gap_bucket"][:, -3:] = [[1, 2, 12]]
                    out = sess.run(["interests"], feeds)[0]
                    self.assertEqual(out.shape, (b, K, D))
                    self.assertTrue(np.isfinite(out).all())
                    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)
                    scores = out[0] @ emb.T                      # retrieval: inner product with the rows
                    self.assertEqual(scores.shape, (K, N))

    def test_second_version_moves_current(self):
        before = store.read_current(self.store, "sasrec")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(main(["train", "--profile", "quick", "--model", "sasrec", "--data", str(self.data),
                                   "--store", str(self.store), "--no-baselines"]), 0)
        after = store.read_current(self.store, "sasrec")
        self.assertNotEqual(before, after)
        self.assertTrue((self.store / "sasrec" / before / "manifest.json").exists())  # old version kept
        store.verify_version(self.store / "sasrec" / after)
        leftovers = [p.name for p in (self.store / "sasrec").iterdir()
                     if p.name.startswith(".") and p.name != ".publish.lock"]   # no staging dirs left
        self.assertEqual(leftovers, [])

    def test_missing_data_is_a_clear_error(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(main(["train", "--profile", "quick", "--data", str(Path(self.tmp.name) / "nope"),
                                   "--store", str(self.store)]), 2)
        self.assertIn("npm run data", err.getvalue())


if __name__ == "__main__":
    unittest.main()
