#!/usr/bin/env bash
# Item content embeddings: encodes every item of the dataset (title, year,
# genres) with the pretrained text encoder and publishes the vectors to the
# model store as model `content` (see docs/encoder.md).
#   bash scripts/content-embeddings.sh [--data DIR] [--store DIR] [--batch N] [--threads N] [--intra-op N]
# Defaults: --data $RECSYS_DATA_DIR or data/ml-latest-small,
#           --store $RECSYS_MODEL_STORE or var/models.
# Fetches the encoder first (scripts/fetch-encoder.sh; quick when present).
# Needs the TypeScript build (npx tsc -b) and the dataset (scripts/data.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
bash scripts/fetch-encoder.sh
cli=shared/dist/encoder/content-cli.js
[ -f "$cli" ] || { echo "[content] $cli is missing: run npx tsc -b" >&2; exit 1; }
exec node "$cli" "$@"
