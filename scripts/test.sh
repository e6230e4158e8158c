#!/usr/bin/env bash
# The test command: installs libclang (for pg_query), PostgreSQL's binaries, Chromium + Node.js
# and the browser test's npm packages and nginx if missing, then runs every test (unit tests
# and the integration tests, which start their own private PostgreSQL cluster; set
# CKAN_DATASTORE_TEST_SUPERUSER_URL to use an existing server instead).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
python3 scripts/check_module_cycles.py
scripts/ensure-postgres.sh
scripts/ensure-browser.sh
scripts/ensure-nginx.sh
cargo test --locked "$@"
