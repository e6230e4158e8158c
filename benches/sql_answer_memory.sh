#!/usr/bin/env bash
# Peak memory of our server while it builds maximum-size datastore_search_sql answers (issue 21):
# N concurrent answers just under `sqlsearch_max_answer_bytes`, then N concurrent queries over
# it (stopped at the bound), with a cheap datastore_search timed every 50 ms meanwhile (does a
# large answer stall other requests?). Reported: VmHWM (peak RSS) and VmRSS of the server
# process before, after each step, and 3 s after (memory given back?).
#
#   cargo build --release && benches/sql_answer_memory.sh
#   SRC=/path/to/older/ckan-datastore SERVE_FLAGS= STEPS=under benches/sql_answer_memory.sh
#                                    # the same on a build without the bound (a baseline)
#
# Uses the demo's private PostgreSQL (`ckan-datastore demo`, kept running in the background
# while this runs) and a second server process with datastore_search_sql on, the one measured.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-/tmp/ckds-sqlmem-bin}
DIR=${DIR:-/tmp/ckds-sqlmem}
PGPORT=${PGPORT:-54391}
DEMO_PORT=${DEMO_PORT:-8092}
PORT=${PORT:-8093}
N=${N:-4}
MAX=${MAX:-104857600}
ROWS_UNDER=${ROWS_UNDER:-100}           # rows of 1,000,000 bytes: ~100 MB, under the bound
SRC=${SRC:-target/release/ckan-datastore}
SERVE_FLAGS=${SERVE_FLAGS---sqlsearch-max-per-caller $N --sqlsearch-max-answer-bytes $MAX}
STEPS=${STEPS:-under,over}
cp "$SRC" "$BIN"  # a rebuild does not replace it under the benchmark
mkdir -p "$DIR"
pids=()
# The demo leaves its PostgreSQL running for the next demo; stop it too unless KEEP_PG=1.
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_PG:-0}" != 1 ] && [ -f "$DIR/demo/pgdata/postmaster.pid" ]; then
        kill -TERM "$(head -1 "$DIR/demo/pgdata/postmaster.pid")" 2>/dev/null || true
    fi
}
trap cleanup EXIT

"$BIN" demo --data-dir "$DIR/demo" --pg-port "$PGPORT" --rows 1000 \
    --listen "127.0.0.1:$DEMO_PORT" >"$DIR/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$DEMO_PORT/healthz" >/dev/null && break
    sleep 0.1
done
printf 'sqlsearch_enabled = true\n' >"$DIR/sql.toml"
READ_URL="host=$DIR/demo/socket port=$PGPORT user=datastore_default password=datastore_default dbname=datastore_default"
"$BIN" serve --config "$DIR/sql.toml" --read-url "$READ_URL" --all-tables-public \
    --listen "127.0.0.1:$PORT" $SERVE_FLAGS >"$DIR/serve.log" 2>&1 &
SERVER=$!
pids+=($SERVER)
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
mem() { grep -E '^(VmHWM|VmRSS)' "/proc/$SERVER/status" | tr -s ' \t' ' ' | tr '\n' ' '; }
sql() {
    curl -s -o "$DIR/answer.$1" -w '%{http_code} %{size_download} B %{time_total} s\n' \
        -H 'Content-Type: application/json' \
        -d "{\"sql\": \"$2\"}" "http://127.0.0.1:$PORT/api/3/action/datastore_search_sql"
}
SEARCH="http://127.0.0.1:$PORT/api/3/action/datastore_search?resource_id=5e0c3c6e-8c1f-4d2e-9a57-2f1c7a8b9d01&limit=5"
# A cheap search every 50 ms while `$@` runs: the slowest one.
probe_while() {
    "$@" &
    local work=$! worst=0
    while kill -0 "$work" 2>/dev/null; do
        t=$(curl -s -o /dev/null -w '%{time_total}' "$SEARCH")
        worst=$(echo "$t $worst" | awk '{print ($1 > $2) ? $1 : $2}')
        sleep 0.05
    done
    wait "$work"
    echo "slowest datastore_search meanwhile: $worst s"
}
concurrent() {
    local q=$1 i
    for i in $(seq 1 "$N"); do sql "$i" "$q" & done
    wait
}
sql 0 "SELECT 1 AS x" >/dev/null
echo "$SRC, serve flags: '$SERVE_FLAGS', $N concurrent; tree at $(git rev-parse --short HEAD)"
echo "idle:                   $(mem)"
if [[ ,$STEPS, == *,under,* ]]; then
    echo "== $N x $ROWS_UNDER rows of 1,000,000 bytes (under the bound)"
    probe_while concurrent "SELECT repeat('x', 1000000) AS x FROM generate_series(1, $ROWS_UNDER)"
    echo "after:                  $(mem)"
fi
if [[ ,$STEPS, == *,over,* ]]; then
    echo "== $N x 1000 rows of 1,000,000 bytes (over the bound: 409)"
    probe_while concurrent "SELECT repeat('x', 1000000) AS x FROM generate_series(1, 1000)"
    echo "after:                  $(mem)"
fi
sleep 3
echo "3 s later:              $(mem)"
