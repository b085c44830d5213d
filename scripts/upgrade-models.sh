#!/usr/bin/env bash
# Brings the serving versions of a model store up to the export format the
# services read, from their own weights (same scores, a new version that names
# its parent in `reexported_from`). Today: a prerank version of one graph gets
# its item tower as a graph of its own (item.onnx; docs/ranking.md).
#   bash scripts/upgrade-models.sh [STORE]     (default $RECSYS_MODEL_STORE or var/models)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
store="${1:-${RECSYS_MODEL_STORE:-var/models}}"
if [ -s "$store/prerank/CURRENT" ] && [ ! -f "$store/prerank/$(tr -d '[:space:]' < "$store/prerank/CURRENT")/item.onnx" ]; then
  echo "[upgrade-models] re-exporting prerank $(cat "$store/prerank/CURRENT") in $store with its item tower" >&2
  bash scripts/setup-python.sh
  PYTHONPATH="$ROOT/services/trainer" PYTHONDONTWRITEBYTECODE=1 \
    "$ROOT/.venv/bin/python" -m recsys_trainer reexport --model prerank --store "$store" >&2
fi
