# syntax=docker/dockerfile:1
# recsys/rerank: fusion, diversity, business rules and reasons.
# Build from the repository root (deploy/docker/build.sh builds every image):
#   docker build -f deploy/docker/rerank.Dockerfile -t recsys/rerank:0.1.0 .
# rerank.Dockerfile.dockerignore beside this file keeps data/, var/, node_modules/
# and build outputs out of the context (BuildKit reads it for this Dockerfile).

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

# ---- deps: production dependencies of @recsys/rerank's workspace only ------------
FROM toolchain AS deps
COPY --from=manifests /out/ ./
RUN npm ci --omit=dev --workspace=@recsys/rerank --no-audit --no-fund

# ---- build: all dependencies, protobuf code generation, TypeScript, assembly ---
FROM toolchain AS build
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx buf generate && npx tsc -b services/rerank
COPY --from=deps /src/node_modules /deps/node_modules
ARG TARGETARCH
RUN node deploy/docker/assemble.mjs rerank --node-modules /deps/node_modules --out /app --arch "${TARGETARCH:-amd64}"

# ---- runtime ------------------------------------------------------------------
FROM node:20.20.2-bookworm-slim
# The service needs node only: npm, npx, corepack and yarn go.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
# Root-owned and read-only to the service.
COPY --from=build /app ./
# Numeric, so that the pod's runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 50055 9464
ENTRYPOINT ["node", "services/rerank/dist/main.js"]
