#!/usr/bin/env bash
# Builds the Debian package (target/debian/ckan-datastore_<version>-1_<arch>.deb) with cargo-deb
# from Cargo.toml's [package.metadata.deb]: the release binary, the systemd unit
# (debian/ckan-datastore.service, run as the `ckan-datastore` user that debian/postinst
# creates), /etc/ckan-datastore/ckan-datastore.toml, the nginx files in /etc/nginx/snippets/
# and authz_role.sql in /usr/share/ckan-datastore/. Installs the build's C pieces and
# cargo-deb (from crates.io) when missing. Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb from crates.io..." >&2
  cargo install cargo-deb --locked
fi
# --locked: the dependency versions of Cargo.lock, as the tests use them. --strip: the release
# profile keeps line tables for profiling (150 MB); the packaged binary needs none (20 MB).
cargo deb --locked --strip "$@" >&2
target="${CARGO_TARGET_DIR:-target}"
ls -t "$target"/debian/ckan-datastore_*.deb | head -n 1
