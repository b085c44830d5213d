#!/usr/bin/env bash
# Train, evaluate and publish the prerank (two-tower) and EM3 rank models (docs/ranking.md).
#
#   bash scripts/train-rank.sh [--profile quick|default|full] [--data DIR] [--store DIR] [--docs FILE]
#                              [--replay FILE]
#
# Defaults: --profile default, --data data/ml-latest-small, --store var/models.
# First trains a KuaiFormer on each user's events before the sample moments,
# then replays the served recall stage (built TypeScript, that KuaiFormer, the
# store's `content` model, Swing rebuilt likewise; not the generative channel)
# at the moments before each user's held-out last event
# (services/gateway/src/eval/replay-cli.ts); those candidate sets are the
# samples. Each run adds a version of `em3` and of `prerank` and switches their
# CURRENT pointers. --docs docs/evaluation.md rewrites the ranking section of that file.
# --replay FILE keeps the replay there, and reuses it when FILE exists (experiments on the
# trainer only: the replay is most of the run's time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
say() { echo "train-rank: $*" >&2; }
usage() { sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

profile="default" data="data/ml-latest-small" store="var/models" docs="" replay=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile|--data|--store|--docs|--replay)
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
[ -f services/gateway/dist/eval/replay-cli.js ] || { say "build the TypeScript first (npx tsc -b)"; exit 1; }
config="services/trainer/configs/rank.$profile.json"
read -r contexts users < <(node -e 'const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(c.replay_contexts ?? 8, c.replay_users ?? 0)' "$config")
scratch="$(mktemp -d "${TMPDIR:-/tmp}/recsys-train-rank-XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
if [ -n "$replay" ] && [ -s "$replay" ]; then
  say "reusing the replay $replay"
else
  [ -n "$replay" ] || replay="$scratch/replay.tsv"
  # The replayed KuaiFormer must not have seen the sample moments (the served one never saw the
  # evaluation's held-out events): one of the same profile, trained on each user's events before them.
  say "training the replay's KuaiFormer on each user's events before the last $((contexts + 1))"
  node services/gateway/dist/eval/replay-cli.js --data "$data" --contexts "$contexts" --write-data "$scratch/data"
  bash scripts/train.sh --profile "$profile" --model kuaiformer --data "$scratch/data" --store "$scratch/models"
  say "replaying the served recall at $contexts moments per user (users: ${users/#0/all})"
  mkdir -p "$(dirname "$replay")"
  node services/gateway/dist/eval/replay-cli.js --data "$data" --store "$store" --sequence-store "$scratch/models" \
    --contexts "$contexts" --users "$users" --out "$replay"
fi
args=(rank --profile "$profile" --data "$data" --store "$store" --replay "$replay")
[ -n "$docs" ] && args+=(--docs "$docs")
say "profile $profile, data $data, store $store"
export PYTHONPATH="$ROOT/services/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
"$ROOT/.venv/bin/python" -m recsys_trainer "${args[@]}"
