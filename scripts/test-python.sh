#!/usr/bin/env bash
# Python tests of the trainer (unittest): quick-profile training into a temporary
# store, ONNX parity, bucket rules, compression shapes. About a minute on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup-python.sh
export PYTHONDONTWRITEBYTECODE=1
exec "$ROOT/.venv/bin/python" -m unittest discover -s services/trainer/tests "$@"
