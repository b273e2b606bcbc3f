#!/usr/bin/env bash
# Builds the stack's Go servers from Go modules into the per-user cache
# ($CACHE/<tool>/v<version>/<binary>), each once:
#   etcd · kube (kube-apiserver, kube-controller-manager, kube-scheduler) · kwok ·
#   source-controller · kustomize-controller · helm-controller
# Most upstream go.mod files carry `replace` directives, so `go install mod@ver` refuses them;
# a throw-away wrapper module requires them and copies the replacements (for Kubernetes: pins the
# staging modules to their published versions).
#
#   build-go-servers.sh [all | etcd | kube | kwok | flux | source-controller | …]
#
# Versions come from the environment (provision.sh passes those of scripts/lib/paths.ts).
# Every build shares GOFLAGS with the others, so packages they have in common (k8s.io/*,
# controller-runtime, helm) come out of the Go build cache after the first build.
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.7.0}
SOURCE_CONTROLLER_VERSION=${SOURCE_CONTROLLER_VERSION:-1.7.3}
KUSTOMIZE_CONTROLLER_VERSION=${KUSTOMIZE_CONTROLLER_VERSION:-1.7.3}
HELM_CONTROLLER_VERSION=${HELM_CONTROLLER_VERSION:-1.4.3}
CACHE=${HYBRID_RELEASE_CACHE:-$HOME/.cache/hybrid-release}
export GOFLAGS="-trimpath -mod=mod" GOTOOLCHAIN=local
# wrapper modules live in one scratch dir that goes away even when a build fails
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# lock NAME: one build of a tool at a time per cache, so provisioning from two checkouts at once
# waits for the other build instead of writing the same binary twice (held until this script exits)
lock() {
  mkdir -p "$CACHE"
  exec {fd}>"$CACHE/.build-$1.lock"
  flock "$fd" || true
}

# tools_go IMPORT...: a tools.go that keeps the wrapper's requirements through `go mod tidy`
tools_go() {
  { echo '//go:build tools'; echo 'package tools'; for i in "$@"; do echo "import _ \"$i\""; done; } > tools.go
}

# the GoMod file of MODULE@VERSION, from the module cache (downloaded through the proxy)
gomod_of() {
  go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p'
}

build_etcd() {
  lock etcd
  local out="$CACHE/etcd/v$ETCD_VERSION/etcd"
  [ -x "$out" ] && { echo "etcd v$ETCD_VERSION: cached ($out)"; return; }
  local t0=$SECONDS w; w=$(mktemp -d -p "$SCRATCH")
  echo "etcd v$ETCD_VERSION: building from Go modules (takes a few minutes)"
  cd "$w"
  go mod init hybrid-release.local/etcd-build >/dev/null 2>&1
  # the import must exist before any `go mod tidy`: a tidy without it drops the requirements
  # below and the later tidy then resolves the newest etcd instead of the pinned one
  tools_go go.etcd.io/etcd/server/v3
  # the server's go.mod points its siblings at ../api etc.; pin them to the same tag instead
  for m in server/v3 api/v3 client/pkg/v3 client/v3 pkg/v3; do
    go mod edit -require="go.etcd.io/etcd/$m@v$ETCD_VERSION"
  done
  go mod tidy >/dev/null
  local got; got=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  [ "$got" = "v$ETCD_VERSION" ] || { echo "etcd: resolved $got, wanted v$ETCD_VERSION" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  go build -ldflags='-s -w' -o "$out.tmp" go.etcd.io/etcd/server/v3
  mv "$out.tmp" "$out"
  echo "etcd v$ETCD_VERSION: built in $((SECONDS - t0))s"
}

# kube-apiserver, kube-controller-manager and kube-scheduler from one wrapper module: the three
# share nearly every package, so the second and third mostly link.
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler)
build_kube() {
  lock kube
  local dir="$CACHE/kube/v$KUBE_VERSION" missing=() c
  for c in "${KUBE_CMDS[@]}"; do [ -x "$dir/$c" ] || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] && { echo "kube v$KUBE_VERSION (${KUBE_CMDS[*]}): cached ($dir)"; return; }
  local t0=$SECONDS w; w=$(mktemp -d -p "$SCRATCH")
  echo "kube v$KUBE_VERSION: building ${missing[*]} from Go modules (the longest step, 10-20 min cold)"
  cd "$w"
  go mod init hybrid-release.local/kube-build >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
  local modfile; modfile=$(gomod_of "k8s.io/kubernetes@v$KUBE_VERSION")
  # every staging module (k8s.io/X => ./staging/src/k8s.io/X) is published as k8s.io/X v0.MINOR.PATCH
  local staging="v0.${KUBE_VERSION#*.}"
  for m in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile"); do
    go mod edit -replace="$m=$m@$staging"
  done
  tools_go "${KUBE_CMDS[@]/#/k8s.io/kubernetes/cmd/}"
  go mod tidy >/dev/null
  mkdir -p "$dir"
  local minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
  # what `--version` and /version report; a plain `go build` leaves v0.0.0-master
  local v=k8s.io/component-base/version
  for c in "${missing[@]}"; do
    local t1=$SECONDS
    go build -ldflags="-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
      -o "$dir/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$dir/$c.tmp" "$dir/$c"
    echo "$c v$KUBE_VERSION: built in $((SECONDS - t1))s"
  done
  echo "kube v$KUBE_VERSION: done in $((SECONDS - t0))s"
}

# kwok has no replace directives: a plain `go install`
build_kwok() {
  lock kwok
  local out="$CACHE/kwok/v$KWOK_VERSION/kwok"
  [ -x "$out" ] && { echo "kwok v$KWOK_VERSION: cached ($out)"; return; }
  local t0=$SECONDS
  echo "kwok v$KWOK_VERSION: building from Go modules"
  mkdir -p "$(dirname "$out")"
  GOBIN="$(dirname "$out")" GOFLAGS=-trimpath go install -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  echo "kwok v$KWOK_VERSION: built in $((SECONDS - t0))s"
}

# build_flux NAME VERSION: a Flux controller through a wrapper module that copies the
# controller's replace directives, except the local ones (./api: the api module is published at
# the same tag, and the controller already requires it).
build_flux() {
  local name=$1 version=$2
  lock "$name"
  local out="$CACHE/$name/v$version/$name"
  [ -x "$out" ] && { echo "$name v$version: cached ($out)"; return; }
  local t0=$SECONDS w; w=$(mktemp -d -p "$SCRATCH")
  echo "$name v$version: building from Go modules"
  cd "$w"
  local mod="github.com/fluxcd/$name"
  go mod init "hybrid-release.local/$name-build" >/dev/null 2>&1
  go mod edit -require="$mod@v$version"
  local modfile; modfile=$(gomod_of "$mod@v$version")
  # `go mod edit -json` of the controller's go.mod lists its replacements; keep those that point
  # at a published module version (a New.Version), drop path replacements
  go mod edit -json "$modfile" | node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      for (const r of JSON.parse(s).Replace ?? []) {
        if (!r.New.Version) continue;
        const old = r.Old.Version ? `${r.Old.Path}@${r.Old.Version}` : r.Old.Path;
        console.log(`${old}=${r.New.Path}@${r.New.Version}`);
      }
    })' | while read -r rep; do go mod edit -replace="$rep"; done
  tools_go "$mod"
  # -e: tidy also walks the controllers' test dependencies, one of which the proxy does not serve
  # (github.com/fluxcd/pkg/helmtestserver); the build never needs it
  go mod tidy -e >/dev/null 2>&1
  mkdir -p "$(dirname "$out")"
  go build -ldflags='-s -w' -o "$out.tmp" "$mod"
  mv "$out.tmp" "$out"
  echo "$name v$version: built in $((SECONDS - t0))s"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  kwok) build_kwok ;;
  source-controller) build_flux source-controller "$SOURCE_CONTROLLER_VERSION" ;;
  kustomize-controller) build_flux kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION" ;;
  helm-controller) build_flux helm-controller "$HELM_CONTROLLER_VERSION" ;;
  flux)
    build_flux source-controller "$SOURCE_CONTROLLER_VERSION"
    build_flux kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION"
    build_flux helm-controller "$HELM_CONTROLLER_VERSION"
    ;;
  all)
    build_etcd; build_kube; build_kwok
    build_flux source-controller "$SOURCE_CONTROLLER_VERSION"
    build_flux kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION"
    build_flux helm-controller "$HELM_CONTROLLER_VERSION"
    ;;
  *) echo "usage: $0 [all|etcd|kube|kwok|flux|source-controller|kustomize-controller|helm-controller]" >&2; exit 2 ;;
esac
