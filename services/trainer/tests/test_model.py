"""The encoder's structure: compression path shapes, padding, dynamic batch, ONNX parity."""

import tempfile
import unittest
from pathlib import Path

from fixtures import TRAINER_DIR  # noqa: F401  (sets the import path)

import numpy as np
import torch

from recsys_trainer import export
from recsys_trainer.model import KuaiFormer, ModelConfig

VOCAB = 50


def tiny_model(groups=(8, 8, 4, 4), raw=8, k=3, seed=0) -> KuaiFormer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=VOCAB, max_seq_len=sum(groups) + raw, raw_len=raw, compress_groups=list(groups),
                      dim=16, layers=2, heads=2, ffn_mult=2, num_interests=k, dropout=0.1, num_genres=5)
    genres = torch.randint(0, 6, (VOCAB, 2))
    genres[:2] = 0
    return KuaiFormer(cfg, genres).eval()


def inputs(model, lengths, seed=1):
    g = np.random.default_rng(seed)
    L = model.cfg.max_seq_len
    b = len(lengths)
    it, rb, gb = (np.zeros((b, L), np.int64) for _ in range(3))
    for r, n in enumerate(lengths):
        if n:
            it[r, L - n:] = g.integers(2, VOCAB, n)
            rb[r, L - n:] = g.integers(1, 17, n)
            gb[r, L - n:] = g.integers(2, 32, n)
            gb[r, L - n] = 1
    return tuple(torch.from_numpy(a) for a in (it, rb, gb))


class CompressionTest(unittest.TestCase):
    def test_long_sequence_goes_through_the_compressor(self):
        model = tiny_model()
        seen = []
        model.compressor.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
        L = model.cfg.max_seq_len                             # 32 = 8+8+4+4 compressed + 8 raw
        x = inputs(model, [L, 20, 3])
        with torch.no_grad():
            ctok, cpad = model.compress(x[0][:, :24], x[1][:, :24], x[2][:, :24])
            u = model(*x)
        self.assertEqual(ctok.shape, (3, 4, 16))              # one token per group
        self.assertEqual(cpad.tolist(), [[False] * 4, [True, False, False, False], [True] * 4])
        # 2 groups of 8 and 2 groups of 4, batched by size: [B*2, 8, D] and [B*2, 4, D]
        self.assertEqual(seen[:2], [(6, 8, 16), (6, 4, 16)])
        self.assertEqual(model.cfg.num_tokens, 4 + 8 + 3)     # the Transformer sees 15 tokens, not 35
        self.assertEqual(u.shape, (3, 3, 16))
        torch.testing.assert_close(u.norm(dim=-1), torch.ones(3, 3))

    def test_old_events_reach_the_output_only_through_compression(self):
        model = tiny_model()
        L = model.cfg.max_seq_len
        x = inputs(model, [L])
        y = [t.clone() for t in x]
        y[0][0, 0] = 7 if int(x[0][0, 0]) != 7 else 8        # change the oldest event
        with torch.no_grad():
            self.assertGreater((model(*x) - model(*y)).abs().max().item(), 1e-6)
            cut = x[0].clone()
            cut[0, :24] = 0                                   # and without the old part: different again
            self.assertGreater((model(*x) - model(cut, x[1], x[2])).abs().max().item(), 1e-6)

    def test_padding_is_ignored(self):
        model = tiny_model()
        x = inputs(model, [5])
        y = [t.clone() for t in x]
        y[1][0, :10] = 3                                      # garbage under padding (item 0)
        with torch.no_grad():
            torch.testing.assert_close(model(*x), model(*y))

    def test_training_skip_of_empty_groups_matches_eval(self):
        model = tiny_model()
        model.train()
        for blk in [model.compressor, *model.blocks]:
            blk.drop.p = 0.0
        model.emb_drop.p = 0.0
        x = inputs(model, [6, 3])                             # only raw positions used
        with torch.no_grad():
            train_out = model(*x)
            model.eval()
            torch.testing.assert_close(train_out, model(*x))

    def test_single_interest_baseline_has_no_compressor(self):
        model = tiny_model(groups=(), raw=16, k=1)
        self.assertFalse(hasattr(model, "compressor"))
        with torch.no_grad():
            self.assertEqual(model(*inputs(model, [16, 2, 0])).shape, (3, 1, 16))


class OnnxExportTest(unittest.TestCase):
    def test_parity_and_dynamic_batch(self):
        model = tiny_model()
        with tempfile.TemporaryDirectory() as tmp:
            path = export.export_onnx(model, Path(tmp) / "model.onnx")
            self.assertEqual(sorted(p.name for p in Path(tmp).iterdir()), ["model.onnx"])  # one file
            diff = export.parity_max_abs_diff(model, path, batch=6)
            self.assertLessEqual(diff, 1e-4)
            sess = export.onnx_session(path)
            self.assertEqual([i.name for i in sess.get_inputs()], export.INPUT_NAMES)
            for b in (1, 3):
                feeds = dict(zip(export.INPUT_NAMES, (t.numpy() for t in inputs(model, [32, 4, 0][:b] + [9] * (b - 3)))))
                out = sess.run(["interests"], feeds)[0]
                self.assertEqual(out.shape, (b, 3, 16))
                self.assertTrue(np.isfinite(out).all())       # the empty history (all padding) too
                np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)


if __name__ == "__main__":
    unittest.main()
