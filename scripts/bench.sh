#!/usr/bin/env bash
# `npm run bench`: bring the local stack up if needed, then run every benchmark in test/bench/
# one after another (each prints its own table). Stops at the end only what this run started
# (KEEP_STACK=1 keeps it). Extra arguments pick benchmarks by name: npm run bench -- history-size
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/ensure-node.sh):$PATH"
[ -d node_modules ] || scripts/npm-install.sh

already=$(node scripts/stack.ts running-groups 2>/dev/null || true)
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
if [ ${#started[@]} -gt 0 ]; then
  scripts/provision.sh
  echo "==> npm run stack -- up"
  node scripts/stack.ts up
fi
set -a
# shellcheck source=/dev/null
. "${HYBRID_RELEASE_STACK_DIR:-.stack}/env"
set +a

# every benchmark file (lib.ts is the shared helper, not a benchmark), or the ones named
if [ $# -gt 0 ]; then
  benches=()
  for name in "$@"; do benches+=("test/bench/${name%.ts}.ts"); done
else
  benches=()
  for f in test/bench/*.ts; do [ "$(basename "$f")" = lib.ts ] || benches+=("$f"); done
fi

failed=()
for f in "${benches[@]}"; do
  echo
  echo "==> node $f"
  start=$SECONDS
  if node "$f"; then
    echo "==> $f: done in $((SECONDS - start)) s"
  else
    echo "==> $f: FAILED (exit $?) after $((SECONDS - start)) s"
    failed+=("$f")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "==> failed: ${failed[*]}"
  exit 1
fi
