#!/usr/bin/env bash
# npm start: set up whatever is missing, then run the five services.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec node deploy/local/dist/start.js
