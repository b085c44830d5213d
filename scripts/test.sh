#!/usr/bin/env bash
# npm test: set up, lint, then run every test (unit and end-to-end) on node:test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

echo "[test] lint: biome + buf lint" >&2
npx biome check --diagnostic-level=error .
npx buf lint
# buf breaking: compare the contracts with the previous commit, when there is one with proto/.
if git rev-parse -q --verify HEAD~1 >/dev/null 2>&1 && git cat-file -e HEAD~1:proto 2>/dev/null; then
  echo "[test] buf breaking against HEAD~1" >&2
  npx buf breaking proto --against ".git#ref=HEAD~1,subdir=proto"
fi

mapfile -t specs < <(find shared services deploy loadtest -path '*/node_modules' -prune -o -path '*/dist/*' -name '*.spec.js' -print | sort)
echo "[test] ${#specs[@]} test files" >&2
# One file at a time: the end-to-end files start five processes each on 2 cores.
node --test --test-concurrency=1 --test-reporter=spec "${specs[@]}"
