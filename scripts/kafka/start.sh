#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker (KRaft: broker + controller in one
# JVM) on 127.0.0.1:${RECSYS_KAFKA_PORT:-9092}, data under var/, and waits
# until a metadata request succeeds. Idempotent: a running broker is left as
# it is. Prints the bootstrap address on stdout.
#   RECSYS_KAFKA_FRESH=1  wipes the data directory first (tests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$ROOT/scripts/kafka/fetch.sh"

if kafka_running; then
  node "$ROOT/scripts/kafka/wait-ready.mjs" "$KAFKA_BROKERS" 60000
  echo "$KAFKA_BROKERS"
  exit 0
fi

data="$KAFKA_HOME/data"
if [ "${RECSYS_KAFKA_FRESH:-0}" = "1" ]; then rm -rf "$data"; fi
mkdir -p "$data"
props="$KAFKA_HOME/server.properties"
cat >"$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
PROPS

if [ ! -f "$data/meta.properties" ]; then
  cluster_id="$(java -cp "$KAFKA_JARS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  say "formatting $data (cluster $cluster_id)"
  java -cp "$KAFKA_JARS/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" >>"$KAFKA_LOG" 2>&1
fi

say "starting broker on $KAFKA_BROKERS (log: $KAFKA_LOG)"
# setsid: the broker outlives this script and is not hit by the caller's Ctrl-C.
setsid java $KAFKA_HEAP -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
  -cp "$KAFKA_JARS/*" kafka.Kafka "$props" >>"$KAFKA_LOG" 2>&1 </dev/null &
echo $! >"$KAFKA_PID_FILE"
if ! node "$ROOT/scripts/kafka/wait-ready.mjs" "$KAFKA_BROKERS" "${RECSYS_KAFKA_START_TIMEOUT_MS:-90000}"; then
  say "broker did not become ready; last log lines:"
  tail -n 30 "$KAFKA_LOG" >&2 || true
  exit 1
fi
say "ready in ${SECONDS}s"
echo "$KAFKA_BROKERS"
