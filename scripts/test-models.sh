#!/usr/bin/env bash
# Prepares the model store the end-to-end tests use (var/test-models): the
# quick training profile of the sequence recall models and the Swing
# neighbours. Skips what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
store="${RECSYS_TEST_MODEL_STORE:-var/test-models}"
data="${RECSYS_DATA_DIR:-data/ml-latest-small}"
if [ ! -s "$store/swing/CURRENT" ]; then
  node services/recall/dist/swing/build-cli.js --data "$data" --store "$store"
fi
if [ ! -s "$store/kuaiformer/CURRENT" ] || [ ! -s "$store/sasrec/CURRENT" ]; then
  echo "[test-models] training the quick profile into $store" >&2
  bash scripts/train.sh --profile quick --model all --data "$data" --store "$store"
fi
