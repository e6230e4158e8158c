#!/usr/bin/env bash
# Makes sure the browser test can run: Debian's Chromium, Node.js/npm, and the pinned npm
# packages of tests/browser (DataTables 1.12.1 — the version CKAN 2.12.0 bundles —, jQuery,
# playwright-core, which drives the system Chromium and downloads no browser).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${need[*]}: install Chromium (set CHROMIUM) and Node.js" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing ${need[*]} from Debian's packages..." >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
