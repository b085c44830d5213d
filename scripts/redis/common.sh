# Shared settings of scripts/redis/*.sh (sourced); each can be overridden.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REDIS_PORT="${RECSYS_REDIS_PORT:-6379}"
REDIS_HOME="${RECSYS_REDIS_HOME:-$ROOT/var/redis-$REDIS_PORT}"
REDIS_PID_FILE="$REDIS_HOME/redis.pid"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
say() { echo "[redis] $*" >&2; }
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }
