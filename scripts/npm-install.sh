#!/usr/bin/env bash
# Installs node_modules exactly as package-lock.json says (`npm ci`) and stamps it with the lock's
# hash, so scripts/test.sh can tell a current install from a stale one. Quiet: one line on the
# terminal, npm's whole output in the log (.stack/npm-install.log).
#
# The committed lock is complete (every platform package @swc/core may pick), so `npm ci` is the
# path. Should it still fail (a registry that does not serve a locked version, npm/cli#4828), the
# fallback is `npm install`, and it never leaves tracked files modified: package.json and
# package-lock.json are put back byte for byte, and it says so.
set -euo pipefail
cd "$(dirname "$0")/.."
log_dir="${HYBRID_RELEASE_STACK_DIR:-.stack}"
mkdir -p "$log_dir"
log="$log_dir/npm-install.log"
: >"$log"

summary() { grep -Eo '(added|changed|removed) [0-9]+ packages?' "$log" | tail -1 || true; }

if npm ci --no-audit --no-fund >>"$log" 2>&1; then
  echo "    npm ci: $(summary || echo done) (log: $log)"
else
  reason=$(grep -m1 -E '^npm (error|ERR!) [^ ]' "$log" | sed -E 's/^npm (error|ERR!) //' || true)
  saved=$(mktemp -d)
  trap 'rm -rf "$saved"' EXIT
  cp package.json package-lock.json "$saved/"
  if ! npm install --no-audit --no-fund >>"$log" 2>&1; then
    cp "$saved/package.json" "$saved/package-lock.json" .
    echo "!! npm ci failed (${reason:-see the log}), and so did npm install: see $log" >&2
    exit 1
  fi
  restored=""
  for f in package.json package-lock.json; do
    if ! cmp -s "$f" "$saved/$f"; then cp "$saved/$f" "$f"; restored="$restored $f"; fi
  done
  echo "!! npm ci failed (${reason:-see the log}); installed with npm install instead${restored:+, then restored the committed$restored (npm install had rewritten it)} — log: $log" >&2
fi
sha256sum package-lock.json | cut -d' ' -f1 >node_modules/.hybrid-release-lock.sha256
