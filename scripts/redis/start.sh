#!/usr/bin/env bash
# Starts a throwaway Redis (no persistence: the user state is rebuilt from
# the dataset and the event log) on 127.0.0.1:${RECSYS_REDIS_PORT:-6379},
# installing redis-server with apt when missing, and waits for PING.
# Idempotent. Prints the URL on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if ! command -v redis-server >/dev/null; then
  say "installing redis-server (apt)"
  if ! apt-get install -y -q redis-server >&2; then
    apt-get update -q >&2
    apt-get install -y -q redis-server >&2
  fi
fi
if redis_ping; then
  echo "$REDIS_URL"
  exit 0
fi
mkdir -p "$REDIS_HOME"
say "starting redis on 127.0.0.1:$REDIS_PORT"
redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  --dir "$REDIS_HOME" --pidfile "$REDIS_PID_FILE" --logfile "$REDIS_HOME/redis.log" >&2
for _ in $(seq 1 100); do
  if redis_ping; then
    echo "$REDIS_URL"
    exit 0
  fi
  sleep 0.1
done
say "redis did not answer PING; see $REDIS_HOME/redis.log"
exit 1
