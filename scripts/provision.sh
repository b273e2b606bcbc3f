#!/usr/bin/env bash
# Provisions the local test dependencies, idempotently, into a per-user cache keyed by version
# (CI runs in a fresh clone each time; the cache is what makes the second run fast):
#   Node check · apt packages (goiardi, prometheus, git) · Go builds, in parallel: Temporal CLI,
#   etcd, kube (apiserver, controller-manager, scheduler), kwok, Flux controllers · Flux CRDs
# Prints each part and how long it took, then the total (cold: builds; warm: all cached).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${HYBRID_RELEASE_CACHE:-$HOME/.cache/hybrid-release}
export HYBRID_RELEASE_CACHE=$CACHE
T_START=$SECONDS
step() { # step NAME FUNCTION
  local t0=$SECONDS
  echo "==> $1"
  "$2"
  echo "    $1: done in $((SECONDS - t0))s"
}

node_check() {
  local bin; bin=$(scripts/ensure-node.sh)
  export PATH="$bin:$PATH"
  echo "    node $(node --version) at $(command -v node)"
}

apt_packages() {
  local missing=()
  command -v goiardi >/dev/null || missing+=(goiardi)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v openssl >/dev/null || missing+=(openssl)
  # ssh-keygen signs approvers' decisions (tests, demo) as users' own keys do
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  # the stack's Git server runs git-http-backend (git's smart HTTP CGI)
  [ -x /usr/lib/git-core/git-http-backend ] || missing+=(git)
  if [ ${#missing[@]} -eq 0 ]; then echo "    goiardi, prometheus, openssl, ssh-keygen, git: installed"; return; fi
  echo "    installing ${missing[*]} with apt-get"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  # the Debian prometheus package would start a system service; a policy-rc.d may forbid that,
  # which is fine: the stack runs its own instance on a free port
  # DPkg::Lock::Timeout: wait for a parallel apt run (e.g. the browser step) instead of failing
  local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
  $sudo env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" \
    || { $sudo "${apt[@]}" update && $sudo env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; }
}

temporal_cli() {
  if command -v temporal >/dev/null; then echo "using temporal on PATH: $(command -v temporal)"; return; fi
  local out="$CACHE/temporal/v$V_temporal/temporal"
  if [ -x "$out" ]; then echo "temporal v$V_temporal: cached ($out)"; return; fi
  local t0=$SECONDS
  echo "temporal v$V_temporal: building the Temporal CLI from Go modules"
  mkdir -p "$(dirname "$out")"
  # (runs where `set -e` does not apply: fail explicitly)
  GOBIN="$(dirname "$out")" GOFLAGS=-trimpath GOTOOLCHAIN=local \
    go install -ldflags='-s -w' "github.com/temporalio/cli/cmd/temporal@v$V_temporal" || return 1
  [ -x "$out" ] || { echo "temporal: go install did not produce $out" >&2; return 1; }
  echo "temporal v$V_temporal: built in $((SECONDS - t0))s"
}

# The Go builds run side by side, one background job each with its own log: on two cores the
# compilers keep both busy while other jobs download modules or link, and the Flux controllers
# (one job, built one after another) share most packages through the Go build cache.
# A job that fails stops provisioning with its log's tail; every job's duration is printed.
go_builds() {
  local logs="${HYBRID_RELEASE_STACK_DIR:-.stack}/provision-logs"
  mkdir -p "$logs"
  export ETCD_VERSION=$V_etcd KUBE_VERSION=$V_kube KWOK_VERSION=$V_kwok \
    SOURCE_CONTROLLER_VERSION=$V_sourceController KUSTOMIZE_CONTROLLER_VERSION=$V_kustomizeController \
    HELM_CONTROLLER_VERSION=$V_helmController
  local jobs=(temporal etcd kube kwok flux) name pids=() failed=()
  for name in "${jobs[@]}"; do
    rm -f "$logs/$name.seconds"
    # each job writes its own wall time when it ends (jobs are awaited in list order, not end order)
    (
      t0=$SECONDS rc=0
      if [ "$name" = temporal ]; then temporal_cli || rc=$?; else scripts/build-go-servers.sh "$name" || rc=$?; fi
      echo $((SECONDS - t0)) >"$logs/$name.seconds"
      exit $rc
    ) >"$logs/$name.log" 2>&1 &
    pids+=($!)
  done
  echo "    building ${jobs[*]} in parallel (logs: $logs/<name>.log)"
  local i rc
  for i in "${!jobs[@]}"; do
    name=${jobs[$i]}
    rc=0; wait "${pids[$i]}" || rc=$?
    # the log's own lines ("…: cached", "…: built in Ns"), then the job's wall time
    grep -E ': (cached|built in|done in)|^using ' "$logs/$name.log" | sed 's/^/    /' || true
    local took; took=$(cat "$logs/$name.seconds" 2>/dev/null || echo '?')
    if [ $rc -ne 0 ]; then
      failed+=("$name")
      echo "    !! $name FAILED (exit $rc$([ $rc -eq 127 ] && echo ': a command was not found — is Go on PATH?')) after ${took}s; last lines of $logs/$name.log:" >&2
      tail -n 25 "$logs/$name.log" | sed 's/^/       /' >&2
    else
      echo "    $name: job finished after ${took}s"
    fi
  done
  if [ ${#failed[@]} -gt 0 ]; then echo "!! build(s) failed: ${failed[*]}" >&2; return 1; fi
}

# Flux CRDs come from the controllers' own Go modules (config/crd/bases), fetched through the Go
# module proxy at set-up time and cached, never committed.
flux_crds() {
  local dir=$V_fluxCrdDir
  if [ -f "$dir/.complete" ]; then echo "    cached: $dir"; return; fi
  local tmp; tmp=$(mktemp -d)
  local mod v src
  for mod in kustomize-controller:$V_kustomizeController helm-controller:$V_helmController source-controller:$V_sourceController; do
    v=${mod#*:}; mod=${mod%%:*}
    src=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/fluxcd/$mod@v$v" | node -e '
      let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
        const j = JSON.parse(s);
        if (j.Error || !j.Dir) { console.error(j.Error ?? "no Dir in go mod download output"); process.exit(1); }
        console.log(j.Dir);
      })')
    cp "$src"/config/crd/bases/*.yaml "$tmp/"
    echo "    $mod v$v: $(ls "$src"/config/crd/bases | tr '\n' ' ')"
  done
  mkdir -p "$dir"
  cp "$tmp"/*.yaml "$dir/"
  chmod -R u+w "$dir"
  touch "$dir/.complete"
  rm -rf "$tmp"
}

step "node" node_check
# versions live in scripts/lib/paths.ts so stack.ts and this script agree
eval "$(node scripts/lib/paths.ts versions | sed 's/^/V_/')"
step "apt packages" apt_packages
step "go builds (temporal, etcd, kube, kwok, flux controllers)" go_builds
step "flux crds" flux_crds
step "chromium (Temporal UI check)" scripts/provision-browser.sh
echo "==> provisioning done in $((SECONDS - T_START))s (cache: $CACHE)"
