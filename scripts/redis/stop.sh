#!/usr/bin/env bash
# Stops the Redis started by scripts/redis/start.sh and waits until it is gone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pid=""
[ -f "$REDIS_PID_FILE" ] && pid="$(cat "$REDIS_PID_FILE")"
if redis_ping; then
  say "stopping redis on port $REDIS_PORT"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
fi
if [ -n "$pid" ]; then
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$REDIS_PID_FILE"
