#!/usr/bin/env bash
# Provisions the local test dependencies, idempotently, into a per-user cache keyed by version
# (CI runs in a fresh clone each time; the cache is what makes the second run fast):
#   Node check · apt packages (goiardi, prometheus) · Temporal CLI · etcd + kube-apiserver · Flux CRDs
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
  if [ ${#missing[@]} -eq 0 ]; then echo "    goiardi, prometheus, openssl, ssh-keygen: installed"; return; fi
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
  if command -v temporal >/dev/null; then echo "    using temporal on PATH: $(command -v temporal)"; return; fi
  local out="$CACHE/temporal/v$V_temporal/temporal"
  if [ -x "$out" ]; then echo "    cached: $out"; return; fi
  echo "    building Temporal CLI v$V_temporal from Go modules (several minutes cold)"
  mkdir -p "$(dirname "$out")"
  GOBIN="$(dirname "$out")" GOFLAGS=-trimpath GOTOOLCHAIN=local \
    go install -ldflags='-s -w' "github.com/temporalio/cli/cmd/temporal@v$V_temporal"
}

go_servers() {
  ETCD_VERSION=$V_etcd KUBE_VERSION=$V_kube scripts/build-go-servers.sh all | sed 's/^/    /'
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
step "temporal cli" temporal_cli
step "etcd + kube-apiserver" go_servers
step "flux crds" flux_crds
step "chromium (Temporal UI check)" scripts/provision-browser.sh
echo "==> provisioning done in $((SECONDS - T_START))s (cache: $CACHE)"
