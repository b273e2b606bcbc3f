#!/usr/bin/env bash
# `npm run demo`: everything the demo needs on a fresh machine (Node 24, node_modules, the real
# servers), then the demo itself. Extra arguments go to the demo (e.g. --auto-approve).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/session.sh
. scripts/lib/session.sh
ensure_node_modules
use_stack keep   # the stack stays up after the demo, to look around
exec node scripts/demo.ts "$@"
