#!/usr/bin/env bash
# npm start: set up whatever is missing, then run the services.
# `npm start -- --online` (or RECSYS_ONLINE=1) adds the online trainer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
source "$ROOT/scripts/reserve-ports.sh"
cd "$ROOT"
bash scripts/setup.sh
exec node deploy/local/dist/start.js "$@"
