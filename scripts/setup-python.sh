#!/usr/bin/env bash
# Create <repo>/.venv (python3 -m venv) and install services/trainer/requirements.lock
# (every package pinned with its sha256: pip install --require-hashes).
# requirements.txt holds the human-edited pins; the lock is generated from it by
# `python3 scripts/lock-python.py`, and this script stops when the lock is stale.
# Idempotent: pip runs only when the lock file's sha256 differs from the stamp
# left in .venv by the last successful install. Progress goes to stderr.
# Env: PYTHON (interpreter to build the venv from, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCK="$ROOT/services/trainer/requirements.lock"
STAMP="$VENV/.requirements.sha256"
PY="${PYTHON:-python3}"
export PIP_RETRIES=0 PIP_DISABLE_PIP_VERSION_CHECK=1

say() { echo "setup-python: $*" >&2; }

[ -f "$LOCK" ] || { say "missing $LOCK (python3 scripts/lock-python.py makes it)"; exit 1; }
if ! "$PY" "$ROOT/scripts/lock-python.py" --check; then
  say "services/trainer/requirements.txt changed since the lock was made: run python3 scripts/lock-python.py"
  exit 1
fi

# one installer at a time (parallel CI steps, several scripts calling this)
mkdir -p "$ROOT/.cache"
if command -v flock >/dev/null; then
  exec 9>"$ROOT/.cache/setup-python.lock"
  flock 9
fi

want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null \
  && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0  # up to date
fi

if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  command -v "$PY" >/dev/null || { say "$PY not found"; exit 1; }
  if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    say "need Python >= 3.11 (numpy/pandas/torch pins), $PY is $("$PY" -V 2>&1)"; exit 1
  fi
  rm -rf "$VENV"
  say "creating $VENV ($("$PY" -V 2>&1))"
  "$PY" -m venv "$VENV"
fi

say "installing $(grep -cE '^[A-Za-z0-9]' "$LOCK") locked packages from ${LOCK#"$ROOT"/}"
rm -f "$STAMP"
log="$VENV/pip-install.log"
t0=$SECONDS
if ! "$VENV/bin/python" -m pip install --retries 0 --no-input --require-hashes -r "$LOCK" >"$log" 2>&1; then
  grep -vE "Location '.*' is ignored" "$log" | tail -n 25 >&2
  say "pip install failed (full log: $log)"
  exit 1
fi
echo "$want" >"$STAMP"
say "done ($((SECONDS - t0))s)"
