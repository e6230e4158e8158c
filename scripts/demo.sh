#!/usr/bin/env bash
# The demo: installs PostgreSQL's binaries if missing, then runs `ckan-datastore demo` (a
# private cluster under ./.ckan-datastore-demo with a 100,000-row CKAN-shaped sample table,
# served on http://127.0.0.1:8800). Extra arguments go to `demo` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/ensure-postgres.sh
exec cargo run --release --locked -- demo "$@"
