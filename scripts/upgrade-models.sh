#!/usr/bin/env bash
# Brings the serving versions of a model store up to the export format the
# services read, from their own weights (same scores, a new version that names
# its parent in `reexported_from`). Today: a prerank or em3 version of one
# graph gets its item tower as a graph of its own (item.onnx; docs/ranking.md).
#   bash scripts/upgrade-models.sh [STORE]     (default $RECSYS_MODEL_STORE or var/models)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
store="${1:-${RECSYS_MODEL_STORE:-var/models}}"
for model in prerank em3; do
  if [ -s "$store/$model/CURRENT" ] && [ ! -f "$store/$model/$(tr -d '[:space:]' < "$store/$model/CURRENT")/item.onnx" ]; then
    echo "[upgrade-models] re-exporting $model $(cat "$store/$model/CURRENT") in $store with its item tower" >&2
    bash scripts/setup-python.sh
    PYTHONPATH="$ROOT/services/trainer" PYTHONDONTWRITEBYTECODE=1 \
      "$ROOT/.venv/bin/python" -m recsys_trainer reexport --model "$model" --store "$store" >&2
  fi
done
