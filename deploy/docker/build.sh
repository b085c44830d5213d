#!/usr/bin/env bash
# Builds every image from the repository root, tagged recsys/<name>:<tag>.
#   bash deploy/docker/build.sh [TAG]        (default tag: 0.1.0)
# The Node services come from one file, deploy/docker/service.Dockerfile,
# with --build-arg SERVICE=<service> (online-trainer and rank-gpu are named
# stages of it); the Python trainer from deploy/docker/trainer.Dockerfile.
# Push them to your registry and point the prod overlay's `images:` at it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="${1:-0.1.0}"
cd "$ROOT"
service() { # service <name> [docker build options...]
  local name="$1"
  shift
  echo "[build] recsys/$name:$TAG" >&2
  docker build -f deploy/docker/service.Dockerfile --build-arg "SERVICE=$name" "$@" -t "recsys/$name:$TAG" .
}
for name in gateway recall prerank rank rerank stream catalog; do service "$name"; done
service online-trainer --target online-trainer
echo "[build] recsys/rank-gpu:$TAG (linux/amd64)" >&2
docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=rank --target rank-gpu \
  --platform linux/amd64 -t "recsys/rank-gpu:$TAG" .
echo "[build] recsys/trainer:$TAG" >&2
docker build -f deploy/docker/trainer.Dockerfile -t "recsys/trainer:$TAG" .
