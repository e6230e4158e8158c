#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) are on this machine: the
# demo and the tests start a private cluster from them. On Debian/Ubuntu they come from the
# `postgresql` package; anything else: install PostgreSQL and set PG_BIN_DIR.
set -euo pipefail
have_pg() {
  [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ] && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  command -v initdb >/dev/null 2>&1
}
if have_pg; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries not found; install PostgreSQL and set PG_BIN_DIR" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing PostgreSQL from Debian's packages..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql postgresql-contrib >/dev/null
have_pg || { echo "PostgreSQL installed but initdb not found" >&2; exit 1; }
