#!/usr/bin/env bash
# `npm test`: provision, bring the local stack up, typecheck, run every test suite against the
# real servers, and stop the stack again if this run started it. Exits with the test runner's code.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/ensure-node.sh):$PATH"

# npm ci only when node_modules is missing or was installed from another package-lock.json
stamp=node_modules/.hybrid-release-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> npm ci (node_modules missing or installed from another lock)"
  scripts/npm-install.sh
fi

scripts/provision.sh

# Only stop at the end what this run brought up: parts of a stack that already ran stay up.
already=$(node scripts/stack.ts running-groups)
started=()
for g in temporal chef kube prometheus; do
  case ",$already," in *",$g,"*) ;; *) started+=("$g") ;; esac
done
cleanup() {
  if [ ${#started[@]} -gt 0 ] && [ -z "${KEEP_STACK:-}" ]; then
    local only; only=$(IFS=,; echo "${started[*]}")
    echo "==> stopping what this run started: $only (KEEP_STACK=1 keeps it)"
    node scripts/stack.ts down --only "$only" || true
  fi
}
trap cleanup EXIT
echo "==> npm run stack -- up"
node scripts/stack.ts up
set -a
# shellcheck source=/dev/null
. "${HYBRID_RELEASE_STACK_DIR:-.stack}/env"
set +a

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
