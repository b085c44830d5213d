#!/usr/bin/env python3
"""Reference sentence embeddings for the TypeScript text encoder's parity test.

Independent of the TypeScript code: the HuggingFace `tokenizers` library (Rust)
reads the same tokenizer.json, onnxruntime runs the same ONNX file, and numpy
does the pooling. Each sentence runs alone (batch of one, no padding), so the
table is also a check on the TypeScript side's padding and batching.

  - tokenizer.json's own settings (truncation 128, fixed padding to 128) are
    replaced: no padding, truncation to MAX_TOKENS (256, the sentence-
    transformers max_seq_length of all-MiniLM-L6-v2), counted with [CLS] and
    [SEP]. The library truncates the text and then adds the special tokens.
  - sentence embedding = mean of last_hidden_state over the attention mask,
    then divided by max(L2 norm, 1e-12) (torch.nn.functional.normalize).

Usage (from the repository root, after scripts/fetch-encoder.sh):
  .venv/bin/python services/trainer/reference/encode_reference.py \
      [--encoder var/encoder/all-minilm-l6-v2] \
      [--out shared/src/encoder/testdata/reference-vectors.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_TOKENS = 256
DIM = 384

LONG_TEXT = " ".join(
    f"Part {i}: a retired toymaker in a snowed-in mountain village discovers that the wooden "
    "figures he carved for his grandchildren come alive at night, and together they set out "
    "across frozen rivers, abandoned railway tunnels and a city of clockwork lanterns to find "
    "the stolen music box that keeps the winter from lasting forever."
    for i in range(1, 6)
)

SENTENCES: list[tuple[str, str]] = [
    ("title_full", "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy"),
    ("title_horror", "The Shining (1980). Genres: Horror"),
    ("empty", ""),
    ("short", "Up"),
    ("query", "funny animated movie for kids"),
    ("non_ascii_latin", "Amélie (2001) — Le Fabuleux Destin d'Amélie Poulain. Genres: Comedy, Romance"),
    ("non_ascii_cjk_cyrillic", "千と千尋の神隠し (Spirited Away) / Крёстный отец 🎬"),
    ("whitespace_punct", "  Léon:\tThe Professional\n(a.k.a. LÉON!!!)  ...  "),
    ("long_truncated", LONG_TEXT),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    root = Path(__file__).resolve().parents[3]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", type=Path, default=root / "var/encoder/all-minilm-l6-v2")
    ap.add_argument("--out", type=Path, default=root / "shared/src/encoder/testdata/reference-vectors.json")
    args = ap.parse_args()

    onnx_path = args.encoder / "model.onnx"
    tok_path = args.encoder / "tokenizer.json"
    for p in (onnx_path, tok_path):
        if not p.is_file():
            print(f"{p} is missing: run scripts/fetch-encoder.sh first", file=sys.stderr)
            return 1

    tok = Tokenizer.from_file(str(tok_path))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    input_names = {i.name for i in session.get_inputs()}

    rows = []
    for name, text in SENTENCES:
        enc = tok.encode(text)
        ids = np.asarray([enc.ids], dtype=np.int64)
        mask = np.asarray([enc.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in input_names}
        (hidden,) = session.run(["last_hidden_state"], feeds)  # [1, seq, 384] float32
        h = hidden[0].astype(np.float64)
        m = mask[0].astype(np.float64)[:, None]
        pooled = (h * m).sum(axis=0) / max(m.sum(), 1e-9)
        vec = pooled / max(np.linalg.norm(pooled), 1e-12)
        assert vec.shape == (DIM,)
        rows.append(
            {
                "name": name,
                "text": text,
                "token_ids": list(enc.ids),
                "truncated": len(enc.overflowing) > 0,
                "vector": [float(f"{x:.8g}") for x in vec.astype(np.float32)],
            }
        )
        print(f"{name:24s} tokens={len(enc.ids):3d} truncated={len(enc.overflowing) > 0}", file=sys.stderr)

    import tokenizers

    table = {
        "description": "Reference sentence embeddings for shared/src/encoder parity tests; "
        "written by services/trainer/reference/encode_reference.py",
        "encoder": {
            "onnx_sha256": sha256(onnx_path),
            "tokenizer_sha256": sha256(tok_path),
        },
        "max_tokens": MAX_TOKENS,
        "dim": DIM,
        "pooling": "attention-mask mean, L2-normalised (eps 1e-12)",
        "tools": {
            "tokenizers": tokenizers.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "sentences": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} sentences to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
