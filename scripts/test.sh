#!/usr/bin/env bash
# The test command: installs PostgreSQL's binaries if missing, then runs every test (unit tests
# and the integration tests, which start their own private PostgreSQL cluster; set
# CKAN_DATASTORE_TEST_SUPERUSER_URL to use an existing server instead).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-postgres.sh
cargo test --locked "$@"
