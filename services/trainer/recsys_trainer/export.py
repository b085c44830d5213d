"""ONNX export of the user encoder and the ONNX-vs-PyTorch parity check."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

INPUT_NAMES = ["item_idx", "rating_bucket", "gap_bucket"]
OUTPUT_NAME = "interests"
OPSET = 18


def probe_batch(model, batch: int = 5, seed: int = 0):
    """Inputs that exercise every path: a full window, a short one, an empty one (all padding),
    and random lengths in between; left-padded like the serving side builds them."""
    cfg = model.cfg
    g = np.random.default_rng(seed)
    L = cfg.max_seq_len
    lengths = [L, max(1, cfg.raw_len // 2), 0] + list(g.integers(1, L + 1, size=max(0, batch - 3)))
    lengths = lengths[:batch]
    item = np.zeros((batch, L), np.int64)
    rating = np.zeros((batch, L), np.int64)
    gap = np.zeros((batch, L), np.int64)
    for r, n in enumerate(lengths):
        if n == 0:
            continue
        item[r, L - n:] = g.integers(1, cfg.vocab_size, size=n)
        rating[r, L - n:] = g.integers(1, 17, size=n)
        gap[r, L - n:] = g.integers(2, 32, size=n)
        gap[r, L - n] = 1
    return item, rating, gap


def export_onnx(model, path: str | Path) -> Path:
    """Write the encoder as ONE self-contained .onnx file with a dynamic batch dimension."""
    path = Path(path)
    model.eval()
    args = tuple(torch.from_numpy(a) for a in probe_batch(model, 2))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter writes a single file (weights inline) and handles the
        # dynamic batch axis through dynamic_axes; the graph uses only plain ops.
        torch.onnx.export(
            model, args, buf, input_names=INPUT_NAMES, output_names=[OUTPUT_NAME],
            dynamic_axes={**{n: {0: "batch"} for n in INPUT_NAMES}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path), save_as_external_data=False)
    return path


def onnx_session(path: str | Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def parity_max_abs_diff(model, onnx_path: str | Path, batch: int = 8, seed: int = 0) -> float:
    model.eval()
    inputs = probe_batch(model, batch, seed)
    ref = model(*(torch.from_numpy(a) for a in inputs)).numpy()
    sess = onnx_session(onnx_path)
    out = sess.run([OUTPUT_NAME], dict(zip(INPUT_NAMES, inputs)))[0]
    if out.shape != ref.shape:
        raise AssertionError(f"ONNX output shape {out.shape} != PyTorch {ref.shape}")
    return float(np.abs(out - ref).max())
