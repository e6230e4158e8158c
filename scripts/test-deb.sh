#!/usr/bin/env bash
# Builds the release .deb (scripts/package-deb.sh; a release build, several minutes, which is
# why scripts/test.sh does not run it) and runs the package test as root:
# tests/it/package.rs installs it with dpkg -i, checks the unit with systemd-analyze, runs its
# ExecStart line as the ckan-datastore user against the test database behind Debian's nginx
# with the installed snippets, runs `doctor` as that user, then purges the package.
# Needs root (dpkg -i), PostgreSQL's binaries, nginx and systemd-analyze (Debian's `systemd`
# package, which works without systemd running); installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test-deb.sh installs the package system-wide: run it as root" >&2
  exit 1
fi
deb="$(scripts/package-deb.sh)"
scripts/ensure-postgres.sh
scripts/ensure-nginx.sh
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v adduser >/dev/null 2>&1 || missing+=(adduser)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
CKAN_DATASTORE_DEB="$(realpath "$deb")" cargo test --locked --test it package -- --ignored
