#!/usr/bin/env bash
# Fetches the Kafka broker jars (kafka_2.13 + a log4j binding) from Maven
# Central into .cache/kafka/jars. Does nothing when the jars for the current
# pom.xml are already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
stamp="$KAFKA_JARS/.pom.sha256"
want="$(sha256sum "$ROOT/scripts/kafka/pom.xml" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
command -v mvn >/dev/null || { say "mvn not found: apt-get install maven"; exit 1; }
command -v java >/dev/null || { say "java not found: apt-get install openjdk-17-jre-headless"; exit 1; }
say "fetching broker jars from Maven Central into $KAFKA_JARS"
tmp="$KAFKA_JARS.tmp.$$"
rm -rf "$tmp"
mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$tmp" >&2
# slf4j 1.7 would shadow the 2.x API that the log4j binding needs.
rm -f "$tmp"/slf4j-api-1.*.jar
echo "$want" >"$tmp/.pom.sha256"
rm -rf "$KAFKA_JARS"
mkdir -p "$(dirname "$KAFKA_JARS")"
mv "$tmp" "$KAFKA_JARS"
