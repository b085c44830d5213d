#!/usr/bin/env bash
# Train, evaluate and publish the prerank (two-tower) and EM3 rank models (docs/ranking.md).
#
#   bash scripts/train-rank.sh [--profile quick|default|full] [--data DIR] [--store DIR]
#                              [--recall-store DIR] [--docs FILE]
#
# Defaults: --profile default, --data data/ml-latest-small, --store var/models,
# --recall-store = --store. Needs the store's `content` model and the recall
# store's `kuaiformer` model (replayed to make the negatives). Each run adds a
# version of `em3` and of `prerank` and switches their CURRENT pointers.
# --docs docs/evaluation.md rewrites the ranking section of that file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
say() { echo "train-rank: $*" >&2; }
usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

profile="default" data="data/ml-latest-small" store="var/models" recall_store="" docs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile|--data|--store|--recall-store|--docs)
      [ $# -ge 2 ] || { usage >&2; say "$1 needs a value"; exit 2; }
      k="${1#--}"; declare "${k//-/_}=$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; say "unknown argument: $1"; exit 2 ;;
  esac
done
case "$profile" in quick|default|full) ;; *) say "--profile must be quick, default or full"; exit 2 ;; esac

cd "$ROOT"
bash scripts/setup-python.sh
[ -f "$data/interactions.tsv" ] || { say "$data/interactions.tsv not found: run 'npm run data' first"; exit 1; }
args=(rank --profile "$profile" --data "$data" --store "$store" --recall-store "${recall_store:-$store}")
[ -n "$docs" ] && args+=(--docs "$docs")
say "profile $profile, data $data, store $store"
export PYTHONPATH="$ROOT/services/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
exec "$ROOT/.venv/bin/python" -m recsys_trainer "${args[@]}"
