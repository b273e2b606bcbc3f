#!/usr/bin/env bash
# Prints the bin directory of a Node.js >= 22.19 (the system one if new enough, otherwise the
# official Node 24 build from the npm registry, installed once into the per-user cache).
# Usage: export PATH="$(scripts/ensure-node.sh):$PATH"
set -euo pipefail
NODE_VERSION=${HYBRID_RELEASE_NODE_VERSION:-24.21.0}
CACHE=${HYBRID_RELEASE_CACHE:-$HOME/.cache/hybrid-release}

ok() { # node binary new enough?
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null
}
if [ -z "${HYBRID_RELEASE_FORCE_NODE:-}" ] && command -v node >/dev/null && ok node; then
  dirname "$(command -v node)"; exit 0
fi
dir="$CACHE/node/v$NODE_VERSION"
if ! [ -x "$dir/node_modules/.bin/node" ] || ! ok "$dir/node_modules/.bin/node"; then
  echo "installing Node $NODE_VERSION from the npm registry into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node@$NODE_VERSION" >&2
fi
echo "$dir/node_modules/.bin"
