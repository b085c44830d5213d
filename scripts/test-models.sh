#!/usr/bin/env bash
# Prepares the model store the end-to-end tests use (var/test-models): the
# quick training profile of the sequence recall models, the Swing
# neighbours, the item content embeddings, the generative model, and the quick prerank and EM3
# rank models. Skips what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
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
# Content embeddings depend on the dataset and the encoder only: reuse the
# main store's version when it was made from the same dataset (a copy, so the
# two stores stay independent); otherwise encode (~1 min on 2 cores).
if [ ! -s "$store/content/CURRENT" ]; then
  main_store="${RECSYS_MODEL_STORE:-var/models}"
  if [ -s "$main_store/content/CURRENT" ] && node -e '
    const fs = require("fs");
    const [store, data] = process.argv.slice(1);
    const v = fs.readFileSync(`${store}/content/CURRENT`, "utf8").trim();
    const m = JSON.parse(fs.readFileSync(`${store}/content/${v}/manifest.json`, "utf8")).data ?? {};
    const d = JSON.parse(fs.readFileSync(`${data}/manifest.json`, "utf8"));
    process.exit(m.name === d.name && m.num_items === d.num_items ? 0 : 1);
  ' "$main_store" "$data"; then
    version="$(cat "$main_store/content/CURRENT")"
    echo "[test-models] copying content embeddings $version from $main_store" >&2
    mkdir -p "$store/content"
    cp -r "$main_store/content/$version" "$store/content/"
    printf '%s\n' "$version" > "$store/content/CURRENT.tmp" && mv "$store/content/CURRENT.tmp" "$store/content/CURRENT"
  else
    bash scripts/content-embeddings.sh --data "$data" --store "$store"
  fi
fi
# Generative retrieval (quick profile: ~25 s); it reads the content and KuaiFormer models.
if [ ! -s "$store/generative/CURRENT" ]; then
  echo "[test-models] training the quick generative model into $store" >&2
  bash scripts/train.sh --profile quick --model generative --data "$data" --store "$store"
fi
# Prerank and EM3 rank models (quick profile: ~10 s), after the recall and content models they use.
if [ ! -s "$store/em3/CURRENT" ] || [ ! -s "$store/prerank/CURRENT" ]; then
  echo "[test-models] training the quick prerank and rank models into $store" >&2
  bash scripts/train-rank.sh --profile quick --data "$data" --store "$store"
fi
bash scripts/upgrade-models.sh "$store"
