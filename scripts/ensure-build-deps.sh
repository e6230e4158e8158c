#!/usr/bin/env bash
# Makes sure the C toolchain pieces the build needs are on this machine: `pg_query` (the
# PostgreSQL parser behind datastore_search_sql) compiles libpg_query with the C compiler and
# generates its bindings with libclang. On Debian/Ubuntu: the `libclang-dev` package (and
# `gcc`); elsewhere, install libclang and set LIBCLANG_PATH.
set -euo pipefail
have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && ls "$LIBCLANG_PATH"/libclang*.so* >/dev/null 2>&1 && return 0
  ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang-*.so* 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && return 0
  ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'
}
need=()
have_libclang || need+=(libclang-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${need[*]}: install libclang and a C compiler (set LIBCLANG_PATH)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing ${need[*]} from Debian's packages..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
have_libclang || { echo "libclang installed but not found" >&2; exit 1; }
