#!/usr/bin/env bash
# `npm test`: provision, bring the local stack up, typecheck, run every test suite against the
# real servers, and stop the stack again if this run started it. Exits with the test runner's code.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/session.sh
. scripts/lib/session.sh
ensure_node_modules
use_stack

echo "==> typecheck"
npx tsc -p tsconfig.json

# node --test treats a glob that matches nothing as zero tests; list only suites that exist so
# the output says which ran
globs=()
for suite in unit integration workflow e2e; do
  if [ -n "$(find "test/$suite" -name '*.test.ts' -print -quit 2>/dev/null)" ]; then
    globs+=("test/$suite/**/*.test.ts")
  fi
done
echo "==> node --test ${globs[*]}"
rc=0
node --test --test-concurrency=4 --test-timeout=600000 "${globs[@]}" || rc=$?
exit $rc
