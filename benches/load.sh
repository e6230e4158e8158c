#!/usr/bin/env bash
# HTTP load test of ckan-datastore against its own demo database, next to raw PostgreSQL
# running the equivalent single statement. Needs no CKAN: only cargo, PostgreSQL's server
# binaries (initdb/postgres/pg_ctl, as for `ckan-datastore demo`), pgbench, curl and wrk
# (Debian: `apt-get install wrk postgresql-contrib`; `oha` is used if wrk is missing).
#
#   benches/load.sh                          # build, demo, wrk c=2,8 x 10 s, pgbench, stop
#   DURATION=5 CONNS="2 8 32" benches/load.sh
#
# Steps:
#   1. cargo build --release (NO_BUILD=1 skips it)
#   2. starts `target/release/ckan-datastore demo` in the background (first run: initdb a
#      private cluster in $DATA_DIR and load $ROWS rows; later runs reuse it) and waits until
#      datastore_search answers (READY_TIMEOUT seconds)
#   3. for each workload and concurrency: wrk (1 thread, $DURATION s, POST JSON body)
#   4. the same page as raw SQL with pgbench (-M prepared, same concurrency and duration)
#      over the demo cluster's unix socket, as the read role; latency percentiles from
#      pgbench's per-transaction log
#   5. prints a table with req/s, p50/p90/p99 and the HTTP / raw-PG ratios; stops the server
#      (and the demo's PostgreSQL if this script started it, unless KEEP_PG=1)
# Raw outputs go to $OUT (default target/load/<UTC timestamp>).
#
# Workloads (resource = the demo table 5e0c3c6e-…, 100,000 rows):
#   page100          {"resource_id": R, "limit": 100}  (CKAN's default page; includes the total)
#   page100_nototal  same + "include_total": false
# SQL equivalents (sql in $OUT/*.sql):
#   page100_records  the 100 records as the JSON text CKAN returns (the PG ceiling for the page)
#   page100_count    the same + count(*) over the table: what our server runs today, since the
#                    unfiltered total is computed by count(*) in the page statement (no totals
#                    cache yet). page100 is compared with this one, page100_nototal with
#                    page100_records.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROWS=${ROWS:-100000}
DURATION=${DURATION:-10}
CONNS=${CONNS:-"2 8"}
LISTEN=${LISTEN:-127.0.0.1:8800}
DATA_DIR=${DATA_DIR:-$ROOT/.ckan-datastore-demo}
PG_PORT=${PG_PORT:-54329}
READY_TIMEOUT=${READY_TIMEOUT:-600}
OUT=${OUT:-$ROOT/target/load/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=$ROOT/target/release/ckan-datastore
R=5e0c3c6e-8c1f-4d2e-9a57-2f1c7a8b9d01
BASE=http://$LISTEN
URL=$BASE/api/3/action/datastore_search

log() { printf '[load.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
SERVER_PID=
PG_STARTED_BY_US=0

# ------------------------------------------------------------------ cleanup
pg_bin() {
  if [ -n "${PG_BIN_DIR:-}" ]; then echo "$PG_BIN_DIR"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}
stop_pg() {
  local pgdata=$DATA_DIR/pgdata bin owner
  [ -f "$pgdata/postmaster.pid" ] || return 0
  bin=$(pg_bin)
  owner=$(stat -c %U "$pgdata")
  log "stopping the demo's PostgreSQL ($pgdata)"
  if [ "$(id -un)" != "$owner" ] && [ "$(id -u)" = 0 ]; then
    timeout 60 runuser -u "$owner" -- "$bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
  else
    timeout 60 "$bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server still up after 10 s, SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$PG_STARTED_BY_US" = 1 ] && [ "${KEEP_PG:-0}" != 1 ]; then stop_pg; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ tools
command -v curl >/dev/null || die "curl is required"
command -v pgbench >/dev/null || die "pgbench is required (Debian: apt-get install postgresql-contrib)"
if command -v wrk >/dev/null; then
  TOOL=wrk
elif command -v oha >/dev/null; then
  TOOL=oha
else
  die "wrk is required (Debian: apt-get install wrk; or install oha)"
fi

# ------------------------------------------------------------------ build + start
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release"
  cargo build --release --quiet
fi
[ -x "$BIN" ] || die "$BIN not found"
if curl -s -m 2 -o /dev/null "$BASE/"; then
  die "something already answers on $LISTEN (stop it or set LISTEN=)"
fi
[ -f "$DATA_DIR/pgdata/postmaster.pid" ] || PG_STARTED_BY_US=1

log "starting: $BIN demo --rows $ROWS --listen $LISTEN --data-dir $DATA_DIR --pg-port $PG_PORT"
RUST_LOG=${RUST_LOG:-warn} "$BIN" demo --rows "$ROWS" --listen "$LISTEN" \
  --data-dir "$DATA_DIR" --pg-port "$PG_PORT" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!

BODY_TOTAL="{\"resource_id\": \"$R\", \"limit\": 100}"
BODY_NOTOTAL="{\"resource_id\": \"$R\", \"limit\": 100, \"include_total\": false}"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -s -m 10 -o "$OUT/first_response.json" -H 'Content-Type: application/json' \
        --data-binary "$BODY_TOTAL" "$URL" && grep -q '"success": true' "$OUT/first_response.json"; do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$OUT/server.log" >&2; die "server exited"; }
  [ $SECONDS -lt $deadline ] || { tail -20 "$OUT/server.log" >&2; die "not ready after ${READY_TIMEOUT}s"; }
  sleep 0.5
done
total=$(grep -o '"total": [0-9]*' "$OUT/first_response.json" | head -1 | grep -o '[0-9]*$' || true)
log "server ready (pid $SERVER_PID, total=$total, $(wc -c <"$OUT/first_response.json") bytes per page)"
[ "${total:-0}" -ge 100 ] || die "unexpected first response: $(head -c 300 "$OUT/first_response.json")"

# ------------------------------------------------------------------ HTTP load
# Writes "<req/s> <p50 ms> <p90 ms> <p99 ms> <requests> <errors>" to stdout.
http_run() {  # http_run NAME BODY CONNS
  local name=$1 body=$2 c=$3 lua=$OUT/$1.lua raw=$OUT/http_$1_c$3.txt
  if [ "$TOOL" = wrk ]; then
    cat >"$lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
EOF
    timeout $((DURATION + 60)) wrk -t 1 -c "$c" -d "${DURATION}s" --timeout 10s -s "$lua" "$URL" >"$raw" 2>&1 \
      || { cat "$raw" >&2; die "wrk failed ($name c=$c)"; }
    sed -n 's/^RESULT //p' "$raw"
  else
    timeout $((DURATION + 60)) oha --no-tui -z "${DURATION}s" -c "$c" -m POST \
      -H 'Content-Type: application/json' -d "$body" --output-format json "$URL" >"$raw" 2>&1 \
      || { cat "$raw" >&2; die "oha failed ($name c=$c)"; }
    python3 - "$raw" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
ok = sum(v for k, v in d.get("statusCodeDistribution", {}).items() if k.startswith("2"))
n = sum(d.get("statusCodeDistribution", {}).values())
err = sum(d.get("errorDistribution", {}).values()) + (n - ok)
print("%.1f %.3f %.3f %.3f %d %d" % (s["requestsPerSec"], p["p50"] * 1e3, p["p90"] * 1e3, p["p99"] * 1e3, n, err))
EOF
  fi
}

# ------------------------------------------------------------------ raw PostgreSQL
# (the colons of the timestamp format are written \072: pgbench would read ":MI" as a variable)
SELECT_LIST="_id, id, name, city, category, price, quantity, rating, \
to_char(created, E'YYYY-MM-DD\"T\"HH24\\072MI\\072SS.MS') AS created, day, available, tags, \
coalesce((meta).json, 'null') AS meta, description"
cat >"$OUT/page100_records.sql" <<EOF
SELECT coalesce(array_to_json(array_agg(t)), '[]')::text FROM (SELECT $SELECT_LIST FROM "$R" ORDER BY _id LIMIT 100) t;
EOF
cat >"$OUT/page100_count.sql" <<EOF
SELECT coalesce(array_to_json(array_agg(t)), '[]')::text, (SELECT count(*) FROM "$R") FROM (SELECT $SELECT_LIST FROM "$R" ORDER BY _id LIMIT 100) t;
EOF
PGCONN="host=$DATA_DIR/socket port=$PG_PORT user=datastore_default password=datastore_default dbname=datastore_default"
# the statements must run and give 100 records
for s in page100_records page100_count; do
  n=$(timeout 30 psql -X -q -A -t -d "$PGCONN" -f "$OUT/$s.sql" | grep -o '"_id":' | wc -l) \
    || die "psql $s failed"
  [ "$n" = 100 ] || die "$s returned $n records"
done
# ... and the same records as the HTTP answer (JSON values compared)
timeout 30 psql -X -q -A -t -d "$PGCONN" -f "$OUT/page100_records.sql" >"$OUT/page100_records.out"
python3 - "$OUT/first_response.json" "$OUT/page100_records.out" <<'EOF' || log "WARNING: the SQL's records differ from the HTTP answer's"
import json, sys
http = json.load(open(sys.argv[1]))["result"]["records"]
sql = json.loads(open(sys.argv[2]).read())
sys.exit(0 if http == sql else 1)
EOF

pg_run() {  # pg_run NAME CONNS -> same format as http_run
  local name=$1 c=$2 dir=$OUT/pgbench_$1_c$2 j
  j=$(( c < $(nproc) ? c : $(nproc) ))
  mkdir -p "$dir"
  timeout $((DURATION + 60)) pgbench -n -M prepared -f "$OUT/$name.sql" -c "$c" -j "$j" -T "$DURATION" \
      -l --log-prefix="$dir/log" "$PGCONN" >"$dir/out.txt" 2>&1 \
    || { cat "$dir/out.txt" >&2; die "pgbench failed ($name c=$c)"; }
  python3 - "$dir" <<'EOF'
import glob, os, re, sys
d = sys.argv[1]
lat = []
for f in glob.glob(os.path.join(d, "log.*")):
    for line in open(f):
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            lat.append(int(parts[2]) / 1000.0)
lat.sort()
out = open(os.path.join(d, "out.txt")).read()
tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
failed = re.search(r"number of failed transactions: (\d+)", out)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print("%.1f %.3f %.3f %.3f %d %d" % (tps, pct(0.50), pct(0.90), pct(0.99), len(lat), int(failed.group(1)) if failed else 0))
EOF
}

# ------------------------------------------------------------------ run
declare -A RES
for c in $CONNS; do
  for w in page100 page100_nototal; do
    [ $w = page100 ] && body=$BODY_TOTAL || body=$BODY_NOTOTAL
    log "HTTP $w c=$c ${DURATION}s ($TOOL)"
    RES[http_${w}_$c]=$(http_run "$w" "$body" "$c")
  done
  for s in page100_count page100_records; do
    log "pgbench $s c=$c ${DURATION}s"
    RES[pg_${s}_$c]=$(pg_run "$s" "$c")
  done
done

# ------------------------------------------------------------------ report
{
  echo
  echo "# ckan-datastore load test, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)"
  echo "# demo table $R ($total rows), ${DURATION}s per run; HTTP by $TOOL (1 thread), SQL by pgbench -M prepared"
  echo "# the HTTP server, its PostgreSQL and the load generator share this machine's cores"
  printf '%-34s %3s %10s %9s %9s %9s %9s %7s\n' what c "req/s" "p50 ms" "p90 ms" "p99 ms" requests errors
  for c in $CONNS; do
    for k in http_page100 pg_page100_count http_page100_nototal pg_page100_records; do
      read -r rps p50 p90 p99 n err <<<"${RES[${k}_$c]}"
      case $k in
        http_page100) label="HTTP page100 (total: count(*))" ;;
        pg_page100_count) label="  SQL records + count(*)" ;;
        http_page100_nototal) label="HTTP page100 include_total=false" ;;
        pg_page100_records) label="  SQL records only" ;;
      esac
      printf '%-34s %3s %10s %9s %9s %9s %9s %7s\n' "$label" "$c" "$rps" "$p50" "$p90" "$p99" "$n" "$err"
    done
  done
  echo
  echo "# ratios HTTP / raw PostgreSQL (req/s: 1.00 = as fast as PostgreSQL alone; p50: 1.00 = no overhead)"
  printf '%-34s %3s %10s %9s\n' pair c "req/s" "p50"
  for c in $CONNS; do
    for pair in "http_page100 pg_page100_count" "http_page100_nototal pg_page100_records"; do
      set -- $pair
      read -r a_rps a_p50 _ <<<"${RES[${1}_$c]}"
      read -r b_rps b_p50 _ <<<"${RES[${2}_$c]}"
      printf '%-34s %3s %10s %9s\n' "${1#http_} / ${2#pg_}" "$c" \
        "$(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN{printf "%.2f", a/b}')" \
        "$(awk -v a="$a_p50" -v b="$b_p50" 'BEGIN{printf "%.2f", a/b}')"
    done
  done
  echo
  echo "# raw outputs: $OUT"
} | tee "$OUT/summary.txt"
