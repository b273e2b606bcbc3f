#!/usr/bin/env bash
# `npm test`: provision, bring the local stack up, typecheck, run every test suite against the
# real servers, and stop the stack again if this run started it. Exits non-zero if any test failed.
#
# Two phases, so heavy suites never run beside each other on a small machine:
#   1. unit, integration and workflow files, as many at once as the machine has CPUs
#      (os.availableParallelism(); TEST_CONCURRENCY overrides);
#   2. the end-to-end files (CLI processes, two clusters, headless Chromium), one file at a time.
# The terminal gets one dot per test and the failures; the full spec report of each phase is in
# .stack/test-<phase>.log. Arguments replace the file list (e.g. `npm test -- test/unit/*.test.ts`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/session.sh
. scripts/lib/session.sh
ensure_node_modules
use_stack

echo "==> typecheck"
npx tsc -p tsconfig.json

concurrency=${TEST_CONCURRENCY:-$(node -p 'Math.max(1, require("node:os").availableParallelism())')}
logs="${HYBRID_RELEASE_STACK_DIR:-.stack}"
mkdir -p "$logs"

# runs one phase: run_phase NAME CONCURRENCY FILE...; prints its counts, returns node's code
run_phase() {
  local name=$1 n=$2; shift 2
  local log="$logs/test-$name.log"
  echo "==> $name: $# files, $n at a time (full report: $log)"
  local rc=0
  node --test --test-concurrency="$n" --test-timeout=900000 \
    --test-reporter=dot --test-reporter-destination=stdout \
    --test-reporter=spec --test-reporter-destination="$log" "$@" || rc=$?
  echo
  # the spec report ends with its counts: "ℹ tests 120", "ℹ pass 120", …, "ℹ duration_ms …"
  echo "    $name: $(grep -E '^ℹ (tests|pass|fail|cancelled|duration_ms) ' "$log" | sed -E 's/^ℹ //; s/duration_ms ([0-9]+)\..*/\1 ms/' | paste -sd, - | sed 's/,/, /g')"
  return $rc
}

files() { find "$@" -name '*.test.ts' 2>/dev/null | sort; }

rc=0
if [ $# -gt 0 ]; then
  run_phase selected "$concurrency" "$@" || rc=$?
else
  mapfile -t light < <(files test/unit test/integration test/workflow)
  mapfile -t heavy < <(files test/e2e)
  [ ${#light[@]} -eq 0 ] || run_phase tests "$concurrency" "${light[@]}" || rc=$?
  [ ${#heavy[@]} -eq 0 ] || run_phase e2e 1 "${heavy[@]}" || rc=$?
fi
[ $rc -eq 0 ] && echo "==> all tests passed" || echo "==> tests failed (exit $rc): the failures are listed above; full reports in $logs/test-*.log"
exit $rc
