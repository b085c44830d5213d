#!/usr/bin/env bash
# Builds every image from the repository root, tagged recsys/<name>:<tag>.
#   bash deploy/docker/build.sh [TAG]        (default tag: 0.1.0)
# Push them to your registry and point the prod overlay's `images:` at it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="${1:-0.1.0}"
cd "$ROOT"
for name in gateway recall prerank rank rerank stream catalog trainer online-trainer; do
  echo "[build] recsys/$name:$TAG" >&2
  docker build -f "deploy/docker/$name.Dockerfile" -t "recsys/$name:$TAG" .
done
echo "[build] recsys/rank-gpu:$TAG (linux/amd64)" >&2
docker build --platform linux/amd64 -f deploy/docker/rank-gpu.Dockerfile -t "recsys/rank-gpu:$TAG" .
