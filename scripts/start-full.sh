#!/usr/bin/env bash
# npm run start:full: the funnel on a real Kafka broker and Redis, with the
# stream service and the online trainer (`npm run start:full -- --no-online`
# or RECSYS_ONLINE=0 leaves it out). Starts both (fetching the broker jars and
# installing redis-server on first use), runs the services, and on exit stops
# Kafka and Redis again unless RECSYS_KEEP_INFRA=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
cd "$ROOT"
bash scripts/setup.sh
stop_infra() {
  if [ "${RECSYS_KEEP_INFRA:-0}" != "1" ]; then
    bash scripts/kafka/stop.sh || true
    bash scripts/redis/stop.sh || true
  fi
}
trap stop_infra EXIT
RECSYS_KAFKA_BROKERS="$(bash scripts/kafka/start.sh)"
RECSYS_REDIS_URL="$(bash scripts/redis/start.sh)"
export RECSYS_KAFKA_BROKERS RECSYS_REDIS_URL
node deploy/local/dist/start.js --full "$@"
