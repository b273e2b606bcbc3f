# Sourced by test.sh, bench.sh and demo.sh: what each needs before it runs on a fresh machine.
# Expects to be sourced from the repository root.

export PATH="$(scripts/ensure-node.sh):$PATH"

# npm ci only when node_modules is missing or was installed from another package-lock.json
ensure_node_modules() {
  local stamp=node_modules/.hybrid-release-lock.sha256
  if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum package-lock.json | cut -d' ' -f1)" ]; then
    echo "==> npm ci (node_modules missing or installed from another lock)"
    scripts/npm-install.sh
  fi
}

# Provisions, brings the local stack up and exports .stack/env. At exit it stops only the parts
# this run started, so a stack that already ran stays up (KEEP_STACK=1, or `use_stack keep`,
# leaves everything running).
HR_STARTED=()
HR_STACK_DIR="${HYBRID_RELEASE_STACK_DIR:-.stack}"   # where the stack's env and every log go
use_stack() {
  provision_quietly
  local already g
  already=$(node scripts/stack.ts running-groups)
  for g in temporal chef sources kube kube-b prometheus; do
    case ",$already," in *",$g,"*) ;; *) HR_STARTED+=("$g") ;; esac
  done
  [ "${1:-}" = keep ] || trap stop_what_we_started EXIT
  stack_up_quietly
  set -a
  # shellcheck source=/dev/null
  . "$HR_STACK_DIR/env"
  set +a
}

# Provisioning and the stack print a line per part (about 55 on a warm machine). The terminal gets
# what a person needs: what was built or installed, failures, and the totals; the whole output
# stays in .stack/provision.log and .stack/stack-up.log (`scripts/provision.sh` and
# `npm run stack -- up` run directly still print everything).
provision_quietly() {
  local log="$HR_STACK_DIR/provision.log" rc=0
  mkdir -p "$HR_STACK_DIR"
  echo "==> provisioning (a machine's first run builds the servers from Go modules, 20-60 min; full output: $log)"
  # hidden: step headings, parts already cached or installed, per-step timings (the total stays)
  scripts/provision.sh 2>&1 | tee "$log" | awk '
    /^==> provisioning done/ { sub(/^==> /, "    "); print; fflush(); next }
    /^==> / || /: done in [0-9]+s$/ || /: cached/ || /^    cached: / || /job finished after/ { next }
    /^    node v/ || /: installed/ || /in parallel \(logs: / || /^    Chromium / || /^    [a-z-]+-controller v[^:]*: .*\.yaml/ { next }
    { print; fflush() }' || rc=$?
  [ $rc -eq 0 ] || { echo "!! provisioning failed (exit $rc): the lines above say what; full output: $log" >&2; return $rc; }
}

stack_up_quietly() {
  local log="$HR_STACK_DIR/stack-up.log" rc=0
  mkdir -p "$HR_STACK_DIR"
  echo "==> starting the local stack (one line per service: $log)"
  node scripts/stack.ts up >"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    echo "!! the stack did not come up (exit $rc):" >&2
    grep -vE ': (started|already running)' "$log" >&2 || true
    return $rc
  fi
  echo "    $(grep -cE ': (started|already running)' "$log") services; $(tail -n 1 "$log")"
}

stop_what_we_started() {
  if [ ${#HR_STARTED[@]} -gt 0 ] && [ -z "${KEEP_STACK:-}" ]; then
    local only; only=$(IFS=,; echo "${HR_STARTED[*]}")
    echo "==> stopping what this run started: $only (KEEP_STACK=1 keeps it)"
    local log="$HR_STACK_DIR/stack-down.log"
    node scripts/stack.ts down --only "$only" >"$log" 2>&1 || echo "!! stopping the stack failed: see $log" >&2
    echo "    stopped $(grep -c ': stopped' "$log" || true) services (one line per service: $log)"
  fi
}
