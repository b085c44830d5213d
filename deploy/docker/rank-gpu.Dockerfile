# syntax=docker/dockerfile:1
# recsys/rank-gpu: the rank service with ONNX Runtime's CUDA execution provider,
# for GPU nodes (k8s/overlays/gpu). linux/amd64 only: ONNX Runtime publishes
# the CUDA provider for linux/x64 only.
#   docker build --platform linux/amd64 -f deploy/docker/rank-gpu.Dockerfile -t recsys/rank-gpu:0.1.0 .
#
# The CUDA provider is installed the way onnxruntime-node documents it: its
# install script, with ONNXRUNTIME_NODE_INSTALL=cuda12 (older name:
# ONNXRUNTIME_NODE_INSTALL_CUDA=v12), downloads libonnxruntime_providers_cuda.so
# and its companions (NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux) next
# to the binding. Those need the CUDA 12 runtime and cuDNN 9 at run time,
# which the nvidia/cuda cudnn-runtime base image provides; the node needs an
# NVIDIA driver that supports CUDA 12.8 (docs/deploy.md, "GPU nodes").

# ---- manifests: every package.json of the workspaces, and nothing else -------
FROM node:20.20.2-bookworm-slim AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out && cp package.json package-lock.json /out/ \
 && find . -name package.json -not -path "*/node_modules/*" -not -path "./package.json" -exec cp --parents {} /out \;

# ---- toolchain: node-gyp needs python3, make and g++ (hnswlib-node) ----------
FROM node:20.20.2-bookworm-slim AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# ---- deps: production dependencies, with the CUDA provider downloaded --------
FROM toolchain AS deps
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY --from=manifests /out/ ./
RUN npm ci --omit=dev --workspace=@recsys/rank --no-audit --no-fund

# ---- build: as rank.Dockerfile; the assembly insists on the CUDA provider ----
FROM toolchain AS build
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx buf generate && npx tsc -b services/rank
COPY --from=deps /src/node_modules /deps/node_modules
RUN node deploy/docker/assemble.mjs rank --node-modules /deps/node_modules --out /app --arch amd64 --require-cuda

# ---- runtime: CUDA 12 + cuDNN 9 userspace, and the node binary ---------------
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
COPY --from=toolchain /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app ./
USER 10001:10001
EXPOSE 50054 9464
ENTRYPOINT ["node", "services/rank/dist/main.js"]
