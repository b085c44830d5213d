#!/usr/bin/env bash
# Create <repo>/.venv (python3 -m venv) and install services/trainer/requirements.txt.
# Idempotent: pip runs only when the requirements file's sha256 differs from the
# stamp left in .venv by the last successful install. Progress goes to stderr.
# Env: PYTHON (interpreter to build the venv from, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/services/trainer/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PY="${PYTHON:-python3}"
export PIP_RETRIES=0 PIP_DISABLE_PIP_VERSION_CHECK=1

say() { echo "setup-python: $*" >&2; }

[ -f "$REQ" ] || { say "missing $REQ"; exit 1; }

# one installer at a time (parallel CI steps, several scripts calling this)
mkdir -p "$ROOT/.cache"
if command -v flock >/dev/null; then
  exec 9>"$ROOT/.cache/setup-python.lock"
  flock 9
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
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

say "installing $(grep -cvE '^\s*(#|$)' "$REQ") pinned packages from ${REQ#"$ROOT"/}"
rm -f "$STAMP"
log="$VENV/pip-install.log"
t0=$SECONDS
if ! "$VENV/bin/python" -m pip install --retries 0 --no-input -r "$REQ" >"$log" 2>&1; then
  grep -vE "Location '.*' is ignored" "$log" | tail -n 25 >&2
  say "pip install failed (full log: $log)"
  exit 1
fi
echo "$want" >"$STAMP"
say "done ($((SECONDS - t0))s)"
