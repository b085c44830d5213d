#!/usr/bin/env bash
# npm test: set up, lint, then run every test (unit and end-to-end) on node:test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
source "$ROOT/scripts/reserve-ports.sh"
cd "$ROOT"
RECSYS_SETUP_TRAIN=none bash scripts/setup.sh
bash scripts/test-models.sh

echo "[test] lint: biome + buf lint" >&2
npx biome check --diagnostic-level=error .
npx buf lint
# buf breaking: the contracts must stay compatible with the released baseline
# image (.ci/proto-baseline.binpb). A deliberate breaking change updates it
# with `npm run proto:baseline` in the same commit, visibly.
echo "[test] buf breaking against .ci/proto-baseline.binpb" >&2
npx buf breaking --against .ci/proto-baseline.binpb

# Kafka and Redis for the integration tests: started once for the whole run,
# on ports of their own (a developer's broker on 9092 is left alone), and
# always stopped at the end, even when a test fails or the run is interrupted.
export RECSYS_KAFKA_PORT="${RECSYS_TEST_KAFKA_PORT:-19092}"
export RECSYS_REDIS_PORT="${RECSYS_TEST_REDIS_PORT:-16379}"
stop_infra() {
  bash scripts/kafka/stop.sh || true
  bash scripts/redis/stop.sh || true
}
trap stop_infra EXIT
echo "[test] starting Kafka (127.0.0.1:$RECSYS_KAFKA_PORT) and Redis (127.0.0.1:$RECSYS_REDIS_PORT)" >&2
RECSYS_TEST_KAFKA_BROKERS="$(RECSYS_KAFKA_FRESH=1 bash scripts/kafka/start.sh)"
RECSYS_TEST_REDIS_URL="$(bash scripts/redis/start.sh)"
export RECSYS_TEST_KAFKA_BROKERS RECSYS_TEST_REDIS_URL

echo "[test] Python trainer tests" >&2
bash scripts/test-python.sh

# The online trainer's integration test runs the real Python online update
# (em3, prerank, kuaiformer) on the quick test models: ~15 s.
export RECSYS_TEST_ONLINE_PYTHON=1

mapfile -t specs < <(find shared services deploy loadtest -path '*/node_modules' -prune -o -path '*/dist/*' -name '*.spec.js' -print | sort)
echo "[test] ${#specs[@]} test files" >&2
# One file at a time: the end-to-end files start five processes each on 2 cores.
# --test-force-exit: a file whose test failed before it closed its consumers or
# servers would otherwise keep its process, and the whole run, alive.
# --import test-exit-guard.mjs: a test file's process that exits 0 before its tests are done is
# reported with the caller's stack (node's runner alone drops its remaining tests silently).
node --test --import "$ROOT/scripts/test-exit-guard.mjs" --test-concurrency=1 --test-force-exit \
  --test-reporter=spec "${specs[@]}"
