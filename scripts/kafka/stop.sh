#!/usr/bin/env bash
# Stops the broker started by scripts/kafka/start.sh (SIGTERM: a controlled
# shutdown that flushes the logs), waiting until the process is gone.
#   RECSYS_KAFKA_WIPE=1  also removes the data directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if kafka_running; then
  pid="$(cat "$KAFKA_PID_FILE")"
  say "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "broker still running after 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$KAFKA_PID_FILE"
if [ "${RECSYS_KAFKA_WIPE:-0}" = "1" ]; then rm -rf "$KAFKA_HOME"; fi
