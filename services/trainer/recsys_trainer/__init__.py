"""recsys_trainer: trains the KuaiFormer recall encoder (and the single-interest
SASRec-like baseline), exports it to ONNX and writes versions to the model store.

The artifact contract (inputs, buckets, files) is documented in docs/models.md.
"""

__version__ = "1.0.0"
