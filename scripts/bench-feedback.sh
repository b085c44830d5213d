#!/usr/bin/env bash
# npm run bench:feedback: feedback ingest (events/s through gRPC into Kafka)
# and feedback -> user-state freshness (p50/p99), on a Kafka broker and Redis
# started for the run (ports 29092 / 26379) and stopped afterwards.
#   --mode embedded   ingest into the embedded bus instead (no Kafka/Redis)
#   --model-update    feedback -> a new model version serving, through the
#                     online trainer (services/stream/src/bench/model-update.ts),
#                     on the same Kafka + Redis (or with --mode embedded)
# Other options: see services/stream/src/bench/feedback.ts and model-update.ts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
bench=feedback
args=()
for a in "$@"; do
  if [[ "$a" == "--model-update" ]]; then bench=model-update; else args+=("$a"); fi
done
RECSYS_SETUP_TRAIN=none bash scripts/setup.sh
if [[ " ${args[*]-} " == *" --mode embedded "* ]]; then
  exec node "services/stream/dist/bench/$bench.js" ${args[@]+"${args[@]}"}
fi
export RECSYS_KAFKA_PORT="${RECSYS_BENCH_KAFKA_PORT:-29092}"
export RECSYS_REDIS_PORT="${RECSYS_BENCH_REDIS_PORT:-26379}"
stop_infra() {
  bash scripts/kafka/stop.sh || true
  bash scripts/redis/stop.sh || true
}
trap stop_infra EXIT
RECSYS_KAFKA_BROKERS="$(RECSYS_KAFKA_FRESH=1 bash scripts/kafka/start.sh)"
RECSYS_REDIS_URL="$(bash scripts/redis/start.sh)"
export RECSYS_KAFKA_BROKERS RECSYS_REDIS_URL
node "services/stream/dist/bench/$bench.js" ${args[@]+"${args[@]}"}
