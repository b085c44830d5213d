#!/usr/bin/env bash
# Prepares everything the funnel needs on a fresh machine, and does nothing
# that is already done (a second run takes seconds):
#   npm packages -> generated protobuf code -> TypeScript build -> MovieLens
#   data -> Swing batch job (item-to-item neighbours in the model store).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
say() { echo "[setup] $*" >&2; }
export ONNXRUNTIME_NODE_INSTALL=skip # its install script would download CUDA libraries
mkdir -p .cache var

# 1. npm packages (npm ci when the lockfile changed since the last install).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 2. Protobuf code generation, when a .proto changed.
stamp=.cache/proto.stamp
if [ ! -f "$stamp" ] || [ ! -d shared/src/gen ] || [ -n "$(find proto buf.gen.yaml -newer "$stamp" -print -quit)" ]; then
  say "generating protobuf code"
  npx buf generate
  touch "$stamp"
fi

# 3. TypeScript (incremental project build).
say "building TypeScript"
npx tsc -b

# 4. Data: MovieLens from Debian's r-cran-dslabs (skipped when present).
bash scripts/data.sh

# 5. Swing item-to-item neighbours (batch job), when the store has none.
store="${RECSYS_MODEL_STORE:-var/models}"
if [ ! -s "$store/swing/CURRENT" ]; then
  say "building Swing item-to-item neighbours"
  node services/recall/dist/swing/build-cli.js --data "${RECSYS_DATA_DIR:-data/ml-latest-small}" --store "$store"
fi
# 6. Sequence recall models (KuaiFormer and the SASRec baseline), when the
#    store has none: the default profile takes up to ~10 minutes on 2 cores.
#    RECSYS_SETUP_TRAIN=none skips it (the tests train their own quick models).
profile="${RECSYS_SETUP_TRAIN:-default}"
if [ "$profile" != "none" ] && { [ ! -s "$store/kuaiformer/CURRENT" ] || [ ! -s "$store/sasrec/CURRENT" ]; }; then
  say "training the sequence recall models (profile $profile; first run only)"
  bash scripts/train.sh --profile "$profile" --model all --data "${RECSYS_DATA_DIR:-data/ml-latest-small}" --store "$store"
fi
# 7. Pretrained text encoder (Maven Central) and item content embeddings (first run only, ~1 min on 2 cores).
bash scripts/fetch-encoder.sh
if [ ! -s "$store/content/CURRENT" ]; then
  say "building item content embeddings"
  bash scripts/content-embeddings.sh --data "${RECSYS_DATA_DIR:-data/ml-latest-small}" --store "$store"
fi
# 8. Generative retrieval (semantic IDs from the content vectors and KuaiFormer's item
#    embeddings, so after both; ~4 minutes), when the store has none.
if [ "$profile" != "none" ] && [ ! -s "$store/generative/CURRENT" ]; then
  say "training the generative retrieval model (profile $profile; first run only)"
  bash scripts/train.sh --profile "$profile" --model generative --data "${RECSYS_DATA_DIR:-data/ml-latest-small}" --store "$store"
fi
# 9. Prerank and EM3 rank models (they replay the KuaiFormer recall and read the content
#    vectors, so they come last), when the store has none.
if [ "$profile" != "none" ] && { [ ! -s "$store/em3/CURRENT" ] || [ ! -s "$store/prerank/CURRENT" ]; }; then
  say "training the prerank and rank models (profile $profile; first run only)"
  bash scripts/train-rank.sh --profile "$profile" --data "${RECSYS_DATA_DIR:-data/ml-latest-small}" --store "$store"
fi
# 10. Versions of an older export format, re-exported from their weights.
bash scripts/upgrade-models.sh "$store"
say "ready"
