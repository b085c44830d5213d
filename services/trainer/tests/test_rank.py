"""The ranking pipeline (docs/ranking.md): samples without leakage, metrics, ONNX parity of the
EM3 and prerank graphs, and the quick profile publishing versions the services can load."""

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

from fixtures import write_replay, write_tiny_dataset

import numpy as np
import torch

from recsys_trainer import store
from recsys_trainer.__main__ import main
from recsys_trainer.data import FIRST_ITEM_IDX, load_dataset
from recsys_trainer.rank_data import (SampleConfig, Samples, build_samples, check_no_leakage, held_out_mask,
                                      read_replay)
from recsys_trainer.rank_model import EM3Rank, RankModelConfig, TwoTowerPrerank
from recsys_trainer.rank_train import (EM3_INPUTS, EM3_SCORE_INPUTS, PRERANK_INPUTS, PRERANK_SCORE_INPUTS, auc,
                                      export_graphs, gauc, probe_inputs)

CONTENT_DIM = 24


def write_content(store_dir: Path, data_dir: Path) -> None:
    """A `content` model version in the store format (unit vectors; the tests need the format, not
    the encoder, which has its own tests on the TypeScript side)."""
    items = [line.split("\t")[0] for line in (data_dir / "items.tsv").read_text().splitlines()[1:] if line]
    g = np.random.default_rng(3)
    vecs = g.standard_normal((len(items), CONTENT_DIM)).astype("<f4")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vdir = store_dir / "content" / "v1"
    vdir.mkdir(parents=True)
    vecs.tofile(vdir / "content.f32")
    (vdir / "item_ids.tsv").write_text("index\titem_id\n" + "".join(f"{i}\t{x}\n" for i, x in enumerate(items)))
    (vdir / "manifest.json").write_text(json.dumps({"model": "content", "version": "v1", "dim": CONTENT_DIM,
                                                    "count": len(items), "files": {}}))
    (store_dir / "content" / "CURRENT").write_text("v1\n")


class RankPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.data = write_tiny_dataset(root / "tiny")
        cls.store = root / "store"
        write_content(cls.store, cls.data)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["train", "--profile", "quick", "--model", "kuaiformer", "--data", str(cls.data),
                         "--store", str(cls.store), "--no-baselines"]) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["rank", "--profile", "quick", "--data", str(cls.data), "--store", str(cls.store),
                       "--replay", str(write_replay(cls.data, root / "replay.tsv"))])
        assert rc == 0, rc
        cls.summary = json.loads(out.getvalue())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_versions_are_published_with_the_contract(self):
        for model, inputs, outputs in (("em3", EM3_SCORE_INPUTS, ["click", "like"]),
                                       ("prerank", PRERANK_SCORE_INPUTS, ["score"])):
            with self.subTest(model=model):
                version = store.read_current(self.store, model)
                self.assertEqual(version, self.summary[model]["version"])
                manifest = store.verify_version(self.store / model / version)
                self.assertEqual(set(manifest["files"]),
                                 {"model.onnx", "item.onnx", "item_vocab.tsv", "user_vocab.tsv", "genre_vocab.tsv", "weights.pt"})
                self.assertEqual([i["name"] for i in manifest["signature"]["inputs"]], inputs)
                self.assertEqual([o["name"] for o in manifest["signature"]["outputs"]], outputs)
                self.assertEqual(manifest["content_dim"], CONTENT_DIM)
                self.assertLessEqual(manifest["onnx_parity_max_abs_diff"], 1e-4)
                self.assertTrue(manifest["data"]["leakage_check"]["passed"])

    def test_published_graphs_score_any_number_of_candidates(self):
        import onnxruntime as ort

        version = store.read_current(self.store, "em3")
        vdir = self.store / "em3" / version
        manifest = json.loads((vdir / "manifest.json").read_text())
        item = ort.InferenceSession(str(vdir / "item.onnx"), providers=["CPUExecutionProvider"])
        score = ort.InferenceSession(str(vdir / "model.onnx"), providers=["CPUExecutionProvider"])
        cfg = RankModelConfig(**{k: v for k, v in manifest["model_config"].items()})
        L = manifest["max_hist_len"]
        for n in (1, 9):
            feeds = probe_inputs(cfg, L, manifest["max_genres"], n=max(n, 2))
            feeds = {k: (v[:n] if k.startswith("cand_") else v) for k, v in feeds.items()}
            vec = item.run(["item_vec"], {i.name: feeds[i.name] for i in item.get_inputs()})[0]
            self.assertEqual(vec.shape, (n, manifest["item_vec_dim"]))
            hist_vec = np.zeros((1, L, manifest["item_vec_dim"]), np.float32)  # an empty history: all padding
            click, like = score.run(["click", "like"], {
                **{i.name: feeds[i.name] for i in score.get_inputs() if i.name in feeds},
                "cand_item_vec": vec, "hist_item_vec": hist_vec, "hist_item_idx": np.zeros((1, L), np.int64)})
            self.assertEqual(click.shape, (n,))
            self.assertTrue(np.all((click > 0) & (click < 1)) and np.all((like > 0) & (like < 1)))

    def write_shard(self, path: Path, n: int = 200) -> Path:
        """Samples as services/online-trainer writes them: the newest events of the tiny dataset as
        positives, random catalogue items at the same moments as negatives, histories before them."""
        ds = load_dataset(self.data)
        g = np.random.default_rng(5)
        order = np.argsort(ds.timestamps)[-n // 2:]
        user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
        lines = []
        for e in order:
            u, ts = user_of[e], int(ds.timestamps[e])
            s, end = ds.offsets[u], ds.offsets[u + 1]
            hist = [[ds.item_ids[ds.items[j] - 2], int(ds.timestamps[j]) * 1000, 4, 4.0]   # [item, ts, RATING, stars]
                    for j in range(s, end) if ds.timestamps[j] < ts]
            for item, click in ((ds.item_ids[ds.items[e] - 2], 1),
                                (ds.item_ids[int(g.integers(0, len(ds.item_ids)))], 0)):
                lines.append(json.dumps({"user_id": ds.user_ids[u], "item_id": item, "timestamp_ms": ts * 1000,
                                         "labels": {"click": click, "like": click}, "history": hist}))
        lines.append(json.dumps({"user_id": "new-user", "item_id": "new-item", "timestamp_ms": 1,
                                 "labels": {"click": 0}, "history": [["also-new", 0]]}))
        path.write_text("\n".join(lines) + "\n")
        return path

    def online(self, st: Path, *extra):
        out = io.StringIO()
        shard = self.write_shard(Path(self.tmp.name) / "shard.jsonl")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["online", "--model", "em3", "--store", str(st), "--data", str(self.data),
                       "--shard", str(shard), *extra])
        self.assertEqual(rc, 0)
        return json.loads(out.getvalue())

    def test_online_update_publishes_only_without_regression(self):
        import shutil

        st = Path(self.tmp.name) / "online-store"          # a copy: the other tests read the original
        shutil.copytree(self.store, st)
        before = store.read_current(st, "em3")
        # an impossible bar (the new model must beat the old AUC by 1.0): rejected, CURRENT unchanged
        r = self.online(st, "--tolerance", "-1")
        self.assertEqual(r["decision"], "rejected", r)
        self.assertEqual(r["parent_version"], before)
        self.assertEqual(store.read_current(st, "em3"), before)
        self.assertGreaterEqual(r["samples"]["new_users"], 1)
        self.assertGreaterEqual(r["samples"]["cold_items"], 1)
        # any result accepted: published as a new version that names its parent
        r = self.online(st, "--tolerance", "1")
        self.assertEqual(r["decision"], "published", r)
        self.assertEqual(store.read_current(st, "em3"), r["version"])
        manifest = store.verify_version(st / "em3" / r["version"])
        self.assertEqual(manifest["parent_version"], before)
        self.assertLessEqual(manifest["onnx_parity_max_abs_diff"], 1e-4)
        self.assertIn("weights.pt", manifest["files"])

    def test_reexport_publishes_the_same_scores_as_a_new_version(self):
        import shutil

        import onnxruntime as ort

        st = Path(self.tmp.name) / "reexport-store"
        shutil.copytree(self.store, st)
        parent = store.read_current(st, "prerank")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(main(["reexport", "--model", "prerank", "--store", str(st)]), 0)
        version = store.read_current(st, "prerank")
        self.assertNotEqual(version, parent)
        manifest = store.verify_version(st / "prerank" / version)
        self.assertEqual(manifest["reexported_from"], parent)
        cfg = RankModelConfig(**manifest["model_config"])
        probe = probe_inputs(cfg, manifest["max_hist_len"], manifest["max_genres"], prerank=True)

        def scores(v: str):
            item = ort.InferenceSession(str(st / "prerank" / v / "item.onnx"), providers=["CPUExecutionProvider"])
            score = ort.InferenceSession(str(st / "prerank" / v / "model.onnx"), providers=["CPUExecutionProvider"])
            vec = item.run(["item_vec"], {i.name: probe[i.name] for i in item.get_inputs()})[0]
            feeds = {i.name: probe[i.name] for i in score.get_inputs() if i.name != "cand_item_vec"}
            return score.run(["score"], {**feeds, "cand_item_vec": vec})[0]

        self.assertLess(float(np.abs(scores(version) - scores(parent)).max()), 1e-5)

    def test_online_recall_update(self):
        """KuaiFormer fine-tuned on the engaged samples: published when the holdout HR@100 holds,
        rejected (CURRENT unchanged) when the bar is impossible."""
        import shutil

        st = Path(self.tmp.name) / "online-recall-store"
        shutil.copytree(self.store, st)
        shard = self.write_shard(Path(self.tmp.name) / "shard-recall.jsonl", n=160)
        before = store.read_current(st, "kuaiformer")

        def run(tolerance):
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(main(["online", "--model", "kuaiformer", "--store", str(st), "--data",
                                       str(self.data), "--shard", str(shard), "--tolerance", tolerance]), 0)
            return json.loads(out.getvalue())

        r = run("-1")
        self.assertEqual(r["decision"], "rejected", r)
        self.assertEqual(store.read_current(st, "kuaiformer"), before)
        r = run("1")
        self.assertEqual(r["decision"], "published", r)
        manifest = store.verify_version(st / "kuaiformer" / r["version"])
        self.assertEqual(manifest["parent_version"], before)
        self.assertLessEqual(manifest["onnx_parity_max_abs_diff"], 1e-4)
        self.assertEqual(store.read_current(st, "kuaiformer"), r["version"])

    def test_ablations_and_funnel_metrics_are_reported(self):
        self.assertIn("id+content", self.summary["ablations"])
        m = self.summary["ablations"]["id+content"]
        for key in ("click_auc", "click_gauc", "like_auc", "like_gauc"):
            self.assertTrue(0.0 <= m[key] <= 1.0, key)
        f = self.summary["funnel"]
        for name in ("recall", "prerank", "em3:id+content", "prerank>em3:id+content"):
            self.assertTrue(0.0 <= f[f"ndcg@10_{name}"] <= f[f"hr@10_{name}"] <= f[f"hr@20_{name}"] <= 1.0, name)
        # half the tiny replay's moments hold their positive; a hit needs it recalled
        self.assertGreater(f["recalled"], 0)
        self.assertLessEqual(f["hr@20_recall"], f["recalled"] / f["moments"])


class ParityTest(unittest.TestCase):
    """Export of untrained models of both kinds: ONNX Runtime matches PyTorch within 1e-4, for the
    exported candidate count and another one (the dynamic axis)."""

    def check(self, model, inputs, outputs, prerank):
        cfg = model.cfg
        probe = probe_inputs(cfg, 12, 3, n=6, prerank=prerank)
        with tempfile.TemporaryDirectory() as d:
            diff, graphs = export_graphs(model.eval(), Path(d), inputs, outputs, probe)
            self.assertLessEqual(diff, 1e-4)
            self.assertEqual({f.name for f in Path(d).iterdir()}, {"model.onnx", "item.onnx"})
            names = [i["name"] for i in graphs["signature"]["inputs"]]
            self.assertEqual(names, PRERANK_SCORE_INPUTS if prerank else EM3_SCORE_INPUTS)
            self.assertEqual(graphs["item_tower"]["outputs"][0]["shape"], ["candidates", cfg.dim])

    def test_em3(self):
        torch.manual_seed(0)
        cfg = RankModelConfig(num_users=10, num_items=50, num_genres=6, num_years=132, content_dim=16, dim=8,
                              recall_dim=4)
        self.check(EM3Rank(cfg), EM3_INPUTS, ["click", "like"], False)

    def test_prerank(self):
        torch.manual_seed(0)
        cfg = RankModelConfig(num_users=10, num_items=50, num_genres=6, num_years=132, content_dim=16, dim=8,
                              recall_dim=4)
        self.check(TwoTowerPrerank(cfg), PRERANK_INPUTS, ["score"], True)


class TrainingPathTest(unittest.TestCase):
    def test_deduplicated_history_gives_the_serving_result(self):
        """Training computes each distinct history item's content embedding once (hist_unique);
        the exported graph computes it per position. Both must score alike."""
        torch.manual_seed(0)
        cfg = RankModelConfig(num_users=10, num_items=50, num_genres=6, num_years=132, content_dim=16, dim=8)
        model = EM3Rank(cfg).eval()
        p = {k: torch.from_numpy(v) for k, v in probe_inputs(cfg, 12, 3, n=6).items()}
        p["hist_item_idx"][0, -3:] = p["hist_item_idx"][0, -4]          # repeated history items
        p["hist_content"][0, -3:] = p["hist_content"][0, -4]
        p["hist_genres"][0, -3:] = p["hist_genres"][0, -4]
        with torch.no_grad():
            plain = model.logits(*(p[n] for n in EM3_INPUTS))
            keys = p["hist_item_idx"][0]
            uq, inverse = torch.unique(keys, return_inverse=True)
            first = [int((keys == u).nonzero()[0]) for u in uq]
            has = (p["hist_content"][0, first].abs().sum(-1) > 0).float()
            dedup = model.logits(*(p[n] for n in EM3_INPUTS), hist_unique=(
                p["hist_content"][0, first], has, p["hist_genres"][0, first], p["hist_year"][0, first],
                inverse.unsqueeze(0)))
        for a, b in zip(plain[:2], dedup[:2]):
            self.assertLess(float((a - b).abs().max()), 1e-5)


class SamplesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        data = write_tiny_dataset(root / "tiny")
        cls.ds = load_dataset(data)
        cls.replay = read_replay(write_replay(data, root / "replay.tsv"), cls.ds)
        cls.samples = build_samples(cls.ds, cls.replay, SampleConfig(max_hist_len=10, negatives=8),
                                    log=lambda _: None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_histories_only_hold_events_before_the_sample(self):
        s = self.samples
        self.assertGreater(check_no_leakage(s), 0)
        present = s.ctx_hist > 0
        self.assertTrue(np.all(s.ctx_hist_ts[present] < np.repeat(s.ctx_ts, present.sum(1))))
        leaky = Samples(s.ctx_user, s.ctx_ts, s.ctx_hist.copy(), s.ctx_hist_ts.copy(), s.ctx_part, s.s_ctx,
                        s.s_item, s.s_click, s.s_like, s.s_kind)
        k = int(np.flatnonzero(present[:, -1])[0])
        leaky.ctx_hist_ts[k, -1] = leaky.ctx_ts[k]
        with self.assertRaises(AssertionError):
            check_no_leakage(leaky)

    def test_the_held_out_events_are_never_samples_or_history(self):
        s, ds = self.samples, self.ds
        held = held_out_mask(ds)
        self.assertEqual(int(held.sum()), ds.num_users)
        user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
        pos = s.s_kind == 0
        # every history is strictly before its moment, which is strictly before the user's held-out event
        last_ts = ds.timestamps[held]
        self.assertTrue(np.all(s.ctx_ts <= last_ts[np.searchsorted(user_of[held], s.ctx_user)]))
        self.assertEqual(int(pos.sum()), len(s.ctx_user))

    def test_labels_and_parts(self):
        s, ds, r = self.samples, self.ds, self.replay
        pos = s.s_kind == 0
        self.assertTrue(np.all(s.s_click[pos] == 1) and np.all(s.s_click[~pos] == 0))
        self.assertTrue(np.all(s.s_like[~pos] == 0))
        np.testing.assert_array_equal(s.s_like[pos], (r.ctx_rating[s.ctx_replay] >= 4).astype(np.float32))
        # a negative comes from its moment's recall set, is never padding/OOV, and the user never rated it
        neg = np.flatnonzero(~pos)
        self.assertTrue(np.all(s.s_item[neg] >= FIRST_ITEM_IDX))
        user_of = np.repeat(np.arange(ds.num_users), ds.lengths())
        rated = set((user_of * ds.vocab_size + ds.items).tolist())
        for j in neg[:500]:
            c = s.s_ctx[j]
            self.assertIn(s.s_item[j], set(r.candidates(s.ctx_replay[c]).tolist()))
            self.assertNotIn(int(s.ctx_user[c]) * ds.vocab_size + int(s.s_item[j]), rated)
        # only moments whose positive recall handed over; each sample carries its recall row as replayed
        self.assertLess(len(s.ctx_user), len(r.ctx_user))
        for j in range(0, len(s.s_item), 7):
            k = s.ctx_replay[s.s_ctx[j]]
            at = np.flatnonzero(r.candidates(k) == s.s_item[j])[0]
            np.testing.assert_array_equal(s.s_recall[j], r.recall_rows(k)[at])
        # per user: the latest moment tests, the one before validates
        for u in np.unique(s.ctx_user)[:20]:
            rows = np.flatnonzero(s.ctx_user == u)
            parts = s.ctx_part[rows[np.argsort(s.ctx_ts[rows], kind="stable")]]
            self.assertEqual(parts[-1], 2)
            if len(rows) > 1:
                self.assertEqual(parts[-2], 1)
                self.assertTrue(np.all(parts[:-2] == 0))


class MetricTest(unittest.TestCase):
    def test_auc_matches_pairwise_counting_with_ties(self):
        g = np.random.default_rng(1)
        y = g.integers(0, 2, 200)
        s = g.integers(0, 10, 200).astype(float)
        pos, neg = s[y == 1], s[y == 0]
        brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
            len(pos) * len(neg))
        self.assertAlmostEqual(auc(y, s), brute, places=12)
        self.assertTrue(np.isnan(auc(np.ones(3), np.arange(3.0))))

    def test_gauc_weights_users_by_samples_and_skips_one_class_users(self):
        y = np.array([1, 0, 0, 1, 1, 0, 1])
        s = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.5])
        u = np.array([0, 0, 0, 1, 1, 1, 2])
        # user 0: AUC 1 (3 samples); user 1: pos {0.3, 0.8} vs neg {0.7}: 0.5 (3 samples); user 2 skipped
        self.assertAlmostEqual(gauc(y, s, u), (1.0 * 3 + 0.5 * 3) / 6)


if __name__ == "__main__":
    unittest.main()
