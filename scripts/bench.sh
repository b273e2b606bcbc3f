#!/usr/bin/env bash
# `npm run bench`: bring the local stack up if needed, then run every benchmark in test/bench/
# one after another (each prints its own table). Stops at the end only what this run started
# (KEEP_STACK=1 keeps it). Extra arguments pick benchmarks by name: npm run bench -- history-size
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/session.sh
. scripts/lib/session.sh
ensure_node_modules
use_stack

# every benchmark file (lib.ts, procs.ts, loop-lag.ts and fake-worker.ts are helpers, not benchmarks), or the ones named
if [ $# -gt 0 ]; then
  benches=()
  for name in "$@"; do benches+=("test/bench/${name%.ts}.ts"); done
else
  benches=()
  for f in test/bench/*.ts; do
    case "$(basename "$f")" in lib.ts | procs.ts | loop-lag.ts | fake-worker.ts) ;; *) benches+=("$f") ;; esac
  done
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
