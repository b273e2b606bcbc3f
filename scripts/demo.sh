#!/usr/bin/env bash
# `npm run demo`: everything the demo needs on a fresh machine (Node 24, node_modules, the real
# servers), then the demo itself. Extra arguments go to the demo (e.g. --auto-approve).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/ensure-node.sh):$PATH"
stamp=node_modules/.hybrid-release-lock.sha256
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum package-lock.json | cut -d' ' -f1)" ]; then
  scripts/npm-install.sh
fi
scripts/provision.sh
node scripts/stack.ts up
set -a
# shellcheck source=/dev/null
. "${HYBRID_RELEASE_STACK_DIR:-.stack}/env"
set +a
exec node scripts/demo.ts "$@"
