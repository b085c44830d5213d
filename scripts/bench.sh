#!/usr/bin/env bash
# npm run bench: set up, then drive Recommend at a fixed rate against a
# LocalStack the runner starts, and report end-to-end and per-stage latency,
# CPU per request of every service and of the runner, degradations, the
# overhead ratio and a bare grpc-js echo reference (docs/benchmarks.md).
#
#   npm run bench                          # 20 Recommend/s for 30 s
#   npm run bench -- --rate 80 --duration 60s
#   BENCH_RATE=80 BENCH_DURATION=60s npm run bench
#
# Any other option is passed to the runner (see `node loadtest/dist/src/cli.js --help`).
# Results: loadtest/results/<timestamp>-bench/ (summary.json, summary.txt, report.html).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/node-env.sh"
source "$ROOT/scripts/reserve-ports.sh"
cd "$ROOT"
bash scripts/setup.sh
echo "[bench] $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load avg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec node loadtest/dist/src/cli.js --profile bench --rate "${BENCH_RATE:-20}" --duration "${BENCH_DURATION:-30s}" "$@"
