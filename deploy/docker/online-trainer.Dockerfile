# syntax=docker/dockerfile:1
# recsys/online-trainer: the online trainer (services/online-trainer, Node), which
# runs the Python trainer's online mode (`python -m recsys_trainer online`,
# services/trainer) in a child process. So the image is the trainer image's
# Python side (python:3.11.13-slim-bookworm, the venv with torch 2.13.0 CPU and
# services/trainer/requirements.txt, services/trainer) plus the node binary and
# the assembled service tree of the Node images.
# Build from the repository root (deploy/docker/build.sh builds every image):
#   docker build -f deploy/docker/online-trainer.Dockerfile -t recsys/online-trainer:0.1.0 .
# online-trainer.Dockerfile.dockerignore beside this file keeps data/, var/,
# node_modules/, .venv and build outputs out of the context (BuildKit reads it
# for this Dockerfile). MovieLens is read from the model-store volume at run time.

# ---- manifests: every package.json of the workspaces, and nothing else -------
# The npm layers below depend on these files only, so they stay cached until a
# dependency changes, and no workspace list is repeated here.
FROM node:20.20.2-bookworm-slim AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out && cp package.json package-lock.json /out/ \
 && find . -name package.json -not -path "*/node_modules/*" -not -path "./package.json" -exec cp --parents {} /out \;

# ---- toolchain: node-gyp needs python3, make and g++ (hnswlib-node) ----------
FROM node:20.20.2-bookworm-slim AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# onnxruntime-node's install script would download CUDA libraries; the CPU provider is bundled.
ENV ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /src

# ---- deps: production dependencies of @recsys/online-trainer's workspace only --
FROM toolchain AS deps
COPY --from=manifests /out/ ./
RUN npm ci --omit=dev --workspace=@recsys/online-trainer --no-audit --no-fund

# ---- build: all dependencies, protobuf code generation, TypeScript, assembly ---
FROM toolchain AS build
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx buf generate && npx tsc -b services/online-trainer
COPY --from=deps /src/node_modules /deps/node_modules
ARG TARGETARCH
RUN node deploy/docker/assemble.mjs online-trainer --node-modules /deps/node_modules --out /app --arch "${TARGETARCH:-amd64}"

# ---- python: the trainer's venv, built as deploy/docker/trainer.Dockerfile does --
# torch first, from PyTorch's CPU index (PyPI's build pulls gigabytes of CUDA
# wheels); setup-python.sh then installs the rest of requirements.txt. Built at
# /app/.venv, the path it keeps in the runtime stage (a venv is not relocatable),
# on the same base image (its python symlinks to /usr/local/bin/python3.11).
FROM python:3.11.13-slim-bookworm AS python
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY scripts/setup-python.sh scripts/
COPY services/trainer/requirements.txt services/trainer/
RUN python -m venv .venv \
 && .venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && bash scripts/setup-python.sh \
 && rm -rf .cache

# ---- runtime: the trainer's Python, plus node -----------------------------------
FROM python:3.11.13-slim-bookworm
# The node binary of the Node images (same Debian bookworm, so the same glibc;
# libstdc++ comes with apt in every Debian image). No npm, npx or corepack.
COPY --from=toolchain /usr/local/bin/node /usr/local/bin/node
# HOME=/tmp: torch and Python write caches under HOME; /tmp is the pod's emptyDir.
# RECSYS_ONLINE_PYTHON / _PYTHONPATH: where this image keeps the trainer (also set
# in k8s/base/config/online-trainer.env; the service's defaults resolve to the same paths).
ENV NODE_ENV=production PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    RECSYS_ONLINE_PYTHON=/app/.venv/bin/python RECSYS_ONLINE_PYTHONPATH=/app/services/trainer
WORKDIR /app
# Root-owned and read-only to the service: the assembled Node tree, the venv and
# the trainer's package (its configs included; tests are small and left in).
COPY --from=build /app ./
COPY --from=python /app/.venv ./.venv
COPY services/trainer services/trainer
# Numeric, so that the pod's runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 50058 9464
ENTRYPOINT ["node", "services/online-trainer/dist/main.js"]
