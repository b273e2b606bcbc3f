#!/usr/bin/env bash
# Installs the browser that the Temporal UI check (test/e2e/temporal-ui.test.ts) drives: Debian's
# `chromium`, through playwright-core. Never downloads a browser build. Idempotent: nothing to do
# when chromium is already on PATH. Prints how long it took.
set -euo pipefail
t0=$SECONDS
echo "==> browser (chromium for the Temporal UI check)"
if command -v chromium >/dev/null; then
  echo "    chromium: installed at $(command -v chromium)"
else
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "    installing chromium with apt-get"
  log=$(mktemp)
  # DPkg::Lock::Timeout: wait for another apt/dpkg run (a parallel provision step) instead of failing
  apt_install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
      install -y --no-install-recommends chromium >>"$log" 2>&1
  }
  if ! apt_install && ! { $sudo apt-get -q -o DPkg::Lock::Timeout=600 update >>"$log" 2>&1 && apt_install; }; then
    tail -n 30 "$log" | sed 's/^/    /' >&2
    echo "    apt-get install chromium failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
  command -v chromium >/dev/null || { echo "    chromium is still not on PATH after apt-get install" >&2; exit 1; }
fi
# the Debian wrapper script prints a harmless shell warning on stderr; keep the version line only
echo "    $(chromium --version 2>/dev/null || echo 'chromium (version unknown)')"
echo "    browser: done in $((SECONDS - t0))s"
