#!/usr/bin/env bash
# Builds kube-apiserver and etcd from Go modules into the per-user cache.
# Both upstream go.mod files carry `replace` directives, so `go install mod@ver` refuses them;
# a throw-away wrapper module requires them and pins the replaced modules to published versions.
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
CACHE=${HYBRID_RELEASE_CACHE:-$HOME/.cache/hybrid-release}
export GOFLAGS="-trimpath -mod=mod" GOTOOLCHAIN=local
# wrapper modules live in one scratch dir that goes away even when a build fails
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

build_etcd() {
  local out="$CACHE/etcd/v$ETCD_VERSION/etcd"
  [ -x "$out" ] && { echo "etcd v$ETCD_VERSION: cached ($out)"; return; }
  local t0=$SECONDS w; w=$(mktemp -d -p "$SCRATCH")
  echo "etcd v$ETCD_VERSION: building from Go modules (takes a few minutes)"
  cd "$w"
  go mod init hybrid-release.local/etcd-build >/dev/null 2>&1
  # the import must exist before any `go mod tidy`: a tidy without it drops the requirements
  # below and the later tidy then resolves the newest etcd instead of the pinned one
  cat > tools.go <<'GO'
//go:build tools
package tools
import _ "go.etcd.io/etcd/server/v3"
GO
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

build_kube() {
  local out="$CACHE/kube/v$KUBE_VERSION/kube-apiserver"
  [ -x "$out" ] && { echo "kube-apiserver v$KUBE_VERSION: cached ($out)"; return; }
  local t0=$SECONDS w; w=$(mktemp -d -p "$SCRATCH")
  echo "kube-apiserver v$KUBE_VERSION: building from Go modules (the longest step, 10-20 min cold)"
  cd "$w"
  go mod init hybrid-release.local/kube-build >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
  local modfile; modfile=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # every staging module (k8s.io/X => ./staging/src/k8s.io/X) is published as k8s.io/X v0.MINOR.PATCH
  local staging="v0.${KUBE_VERSION#*.}"
  for m in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile"); do
    go mod edit -replace="$m=$m@$staging"
  done
  cat > tools.go <<'GO'
//go:build tools
package tools
import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy >/dev/null
  mkdir -p "$(dirname "$out")"
  local minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
  # what `kube-apiserver --version` and /version report; a plain `go build` leaves v0.0.0-master
  local v=k8s.io/component-base/version
  go build -ldflags="-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$out.tmp" "$out"
  echo "kube-apiserver v$KUBE_VERSION: built in $((SECONDS - t0))s"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  all) build_etcd; build_kube ;;
esac
