# Shared settings of scripts/kafka/*.sh (sourced). Every value can be
# overridden from the environment, so tests and benchmarks can run their own
# broker beside a developer's.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KAFKA_PORT="${RECSYS_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${RECSYS_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HOME="${RECSYS_KAFKA_HOME:-$ROOT/var/kafka-$KAFKA_PORT}"
KAFKA_JARS="${RECSYS_KAFKA_JARS:-$ROOT/.cache/kafka/jars}"
KAFKA_HEAP="${RECSYS_KAFKA_HEAP:--Xmx512m -Xms128m}"
KAFKA_PID_FILE="$KAFKA_HOME/broker.pid"
KAFKA_LOG="$KAFKA_HOME/broker.log"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
say() { echo "[kafka] $*" >&2; }

# True when the pid file names a live broker process.
kafka_running() {
  [ -f "$KAFKA_PID_FILE" ] || return 1
  local pid
  pid="$(cat "$KAFKA_PID_FILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null
}
