#!/usr/bin/env bash
# Build a dataset in the canonical format (docs/data.md).
#
#   bash scripts/data.sh                                  # MovieLens ml-latest-small via Debian r-cran-dslabs
#   bash scripts/data.sh --source grouplens --grouplens-dir DIR   # official GroupLens files (csv or ml-1m .dat)
#   bash scripts/data.sh --source synthetic [--users N] [--items N] [--events N] [--clusters K] [--seed S]
#
# Options: --out DIR (default data/ml-latest-small, data/<grouplens dir name>,
# data/synthetic-<users>u-<items>i), --force (rebuild even if up to date).
# Idempotent: an output directory whose manifest matches is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/data"
SYNTH_GENERATOR="synthetic-v1" # keep in step with GENERATOR in scripts/data/synthetic.py
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in scripts/data

say() { echo "data: $*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

source="dslabs" gl_dir="" out="" force=0
users=5000 items=20000 events=500000 clusters=50 seed=42
while [ $# -gt 0 ]; do
  case "$1" in
    --source) source="${2:?--source needs a value}"; shift 2 ;;
    --source=*) source="${1#*=}"; shift ;;
    --grouplens-dir) gl_dir="${2:?--grouplens-dir needs a value}"; shift 2 ;;
    --grouplens-dir=*) gl_dir="${1#*=}"; shift ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --users|--items|--events|--clusters|--seed)
      v="${2:?$1 needs a value}"; [[ "$v" =~ ^[0-9]+$ ]] || die "$1 wants a non-negative integer, got '$v'"
      declare "${1#--}=$((10#$v))"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

case "$source" in
  dslabs)
    out="${out:-$ROOT/data/ml-latest-small}"
    params='{}' ;;
  grouplens)
    [ -n "$gl_dir" ] || die "--source grouplens needs --grouplens-dir DIR"
    [ -d "$gl_dir" ] || die "no such directory: $gl_dir"
    gl_dir="$(cd "$gl_dir" && pwd -P)"
    out="${out:-$ROOT/data/$(basename "$gl_dir")}"
    params="{\"grouplens_dir\": \"${gl_dir//\"/\\\"}\"}" ;;
  synthetic)
    out="${out:-$ROOT/data/synthetic-${users}u-${items}i}"
    params="{\"generator\": \"$SYNTH_GENERATOR\", \"users\": $users, \"items\": $items, \"events\": $events, \"clusters\": $clusters, \"seed\": $seed}" ;;
  *) die "unknown --source '$source' (dslabs|grouplens|synthetic)" ;;
esac
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Fast path: stdlib-only check with the system python, before any venv work.
if [ "$force" = 0 ] && why="$(python3 "$HERE/manifest.py" check "$out" --source "$source" --params "$params")"; then
  say "$out is up to date (manifest ok), nothing to do"
  exit 0
fi
[ "$force" = 1 ] || say "building $out ($why)"

bash "$ROOT/scripts/setup-python.sh"
PY="$ROOT/.venv/bin/python"
t0=$SECONDS

case "$source" in
  dslabs)
    cache="$ROOT/.cache/apt"
    mkdir -p "$cache"
    deb="$(ls -1t "$cache"/r-cran-dslabs_*.deb 2>/dev/null | head -n 1 || true)"
    if [ -z "$deb" ]; then
      say "apt-get download r-cran-dslabs -> ${cache#"$ROOT"/}"
      if ! (cd "$cache" && apt-get download r-cran-dslabs) >"$cache/apt.log" 2>&1; then
        if grep -qE "Unable to locate package|has no installation candidate|Can't select" "$cache/apt.log"; then
          say "no package lists; running apt-get update"
          apt-get update -qq >>"$cache/apt.log" 2>&1 || { tail -n 5 "$cache/apt.log" >&2; die "apt-get update failed (needs root)"; }
          (cd "$cache" && apt-get download r-cran-dslabs) >>"$cache/apt.log" 2>&1 \
            || { tail -n 5 "$cache/apt.log" >&2; die "apt-get download r-cran-dslabs failed"; }
        else
          tail -n 5 "$cache/apt.log" >&2; die "apt-get download r-cran-dslabs failed"
        fi
      fi
      deb="$(ls -1t "$cache"/r-cran-dslabs_*.deb | head -n 1)"
    fi
    version="$(dpkg-deb -f "$deb" Version)"
    pkg="$cache/$(basename "$deb" .deb)"
    if [ ! -f "$pkg/.extracted" ]; then
      rm -rf "$pkg" "$pkg.tmp"
      dpkg-deb -x "$deb" "$pkg.tmp"
      touch "$pkg.tmp/.extracted"
      mv "$pkg.tmp" "$pkg"
    fi
    "$PY" "$HERE/dslabs.py" --pkg-root "$pkg" --out "$out" --package-version "$version" ;;
  grouplens)
    "$PY" "$HERE/grouplens.py" --dir "$gl_dir" --out "$out" ;;
  synthetic)
    "$PY" "$HERE/synthetic.py" --out "$out" --users "$users" --items "$items" --events "$events" \
      --clusters "$clusters" --seed "$seed" ;;
esac

python3 "$HERE/manifest.py" check "$out" --source "$source" --params "$params" >/dev/null \
  || die "output in $out failed its manifest check"
say "done: $out ($((SECONDS - t0))s)"
