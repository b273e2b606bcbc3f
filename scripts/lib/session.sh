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
use_stack() {
  scripts/provision.sh
  local already g
  already=$(node scripts/stack.ts running-groups)
  for g in temporal chef sources kube kube-b prometheus; do
    case ",$already," in *",$g,"*) ;; *) HR_STARTED+=("$g") ;; esac
  done
  [ "${1:-}" = keep ] || trap stop_what_we_started EXIT
  echo "==> npm run stack -- up"
  node scripts/stack.ts up
  set -a
  # shellcheck source=/dev/null
  . "${HYBRID_RELEASE_STACK_DIR:-.stack}/env"
  set +a
}

stop_what_we_started() {
  if [ ${#HR_STARTED[@]} -gt 0 ] && [ -z "${KEEP_STACK:-}" ]; then
    local only; only=$(IFS=,; echo "${HR_STARTED[*]}")
    echo "==> stopping what this run started: $only (KEEP_STACK=1 keeps it)"
    node scripts/stack.ts down --only "$only" || true
  fi
}
