#!/usr/bin/env bash
# Train the recall encoders and publish them to the model store (docs/models.md).
#
#   bash scripts/train.sh [--profile quick|default|full] [--model kuaiformer|sasrec|all|generative]
#                         [--data DIR] [--store DIR] [--config FILE]
#
# Defaults: --profile default, --model all, --data data/ml-latest-small, --store var/models.
# `all` is the two sequence encoders; `generative` (semantic IDs + decoder) reads the store's
# `content` and `kuaiformer` models, so it is trained after them.
# Sets up .venv first (scripts/setup-python.sh). Each model gets a new version
# <store>/<model>/<UTC timestamp>-<profile>/ and its CURRENT pointer is switched to it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
say() { echo "train: $*" >&2; }
usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

profile="default" model="all" data="data/ml-latest-small" store="var/models" config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile|--model|--data|--store|--config)
      [ $# -ge 2 ] || { usage >&2; say "$1 needs a value"; exit 2; }
      declare "${1#--}=$2"; shift 2 ;;
    --profile=*|--model=*|--data=*|--store=*|--config=*)
      k="${1%%=*}"; declare "${k#--}=${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; say "unknown argument: $1"; exit 2 ;;
  esac
done
case "$profile" in quick|default|full) ;; *) say "--profile must be quick, default or full"; exit 2 ;; esac
case "$model" in kuaiformer|sasrec|all|generative) ;; *) say "--model must be kuaiformer, sasrec, all or generative"; exit 2 ;; esac

cd "$ROOT"
bash scripts/setup-python.sh
[ -f "$data/interactions.tsv" ] || { say "$data/interactions.tsv not found: run 'npm run data' first"; exit 1; }

if [ "$model" = generative ]; then
  args=(generative --profile "$profile" --data "$data" --store "$store")
else
  args=(train --profile "$profile" --model "$model" --data "$data" --store "$store")
fi
[ -n "$config" ] && args+=(--config "$config")
say "profile $profile, model $model, data $data, store $store"
export PYTHONPATH="$ROOT/services/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
exec "$ROOT/.venv/bin/python" -m recsys_trainer "${args[@]}"
