#!/usr/bin/env bash
# Makes sure the nginx test (tests/it/nginx.rs) can run: Debian's nginx, which the test loads
# the shipped config/nginx/ files into (`nginx -t`) and runs as the current user on a free port.
# Installed from Debian's packages only when the binary is missing (set NGINX to use another).
set -euo pipefail
if [ -n "${NGINX:-}" ]; then
  [ -x "$NGINX" ] && exit 0
  echo "NGINX=$NGINX is not an executable" >&2
  exit 1
fi
command -v nginx >/dev/null 2>&1 && exit 0
[ -x /usr/sbin/nginx ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing nginx: install it (or set NGINX to its binary)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing nginx from Debian's packages..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The package's own service is not needed (and these machines may run no init): the test
# starts its own nginx.
$SUDO apt-get install -y -qq nginx >/dev/null
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo "nginx installed but not found" >&2; exit 1; }
