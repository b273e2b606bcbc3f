#!/usr/bin/env bash
# Installs node_modules from package-lock.json and stamps it with the lock's hash, so
# scripts/test.sh can tell a current install from a stale one.
# `npm ci` refuses a lock that lacks @swc/core's platform packages when the registry in use does
# not serve the versions @swc/core asks for (seen with this environment's registry: "Missing:
# @swc/core-darwin-arm64@ from lock file", npm/cli#4828); `npm install` then still installs from
# the lock for everything else, so it is the fallback, announced loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! npm ci --no-audit --no-fund; then
  echo "!! npm ci failed (lock out of sync with what the registry serves?); falling back to npm install" >&2
  npm install --no-audit --no-fund
fi
sha256sum package-lock.json | cut -d' ' -f1 > node_modules/.hybrid-release-lock.sha256
