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
#   Both HTTP workloads are compared with page100_records: page100's total comes from the
#   totals cache (docs/totals.md). For each run: our server's and PostgreSQL's CPU time per
#   request (from /proc), so 'PG cpu' 1.00 means PostgreSQL does no more work for a request
#   through us than for the bare statement.
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
PGCONN="host=$DATA_DIR/socket port=$PG_PORT user=datastore_default password=datastore_default dbname=datastore_default"
# the statements must run and give 100 records
for s in page100_records; do
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

# ------------------------------------------------------------------ CPU accounting
# CPU seconds (user + system) of our server, and of the demo's PostgreSQL: the postmaster's
# own and its waited-for children's (backends that have exited) plus every live child's.
TICK=$(getconf CLK_TCK)
server_cpu() { awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$SERVER_PID/stat"; }
pg_cpu() {
  python3 - "$(head -1 "$DATA_DIR/pgdata/postmaster.pid")" "$TICK" <<'EOF'
import os, sys
pm, tick = sys.argv[1], int(sys.argv[2])
def fields(pid):
    s = open(f"/proc/{pid}/stat").read()
    return s[s.rindex(")") + 2:].split()
total = sum(int(x) for x in fields(pm)[11:15])  # utime stime cutime cstime
for pid in os.listdir("/proc"):
    if pid.isdigit() and pid != pm:
        try:
            g = fields(pid)
        except OSError:
            continue
        if g[1] == pm:
            total += int(g[11]) + int(g[12])
print(total / tick)
EOF
}
# runs "$@" (which prints "req/s p50 p90 p99 n errors") and appends our server's and
# PostgreSQL's CPU ms per request
with_cpu() {
  local s0 p0 s1 p1 out
  s0=$(server_cpu); p0=$(pg_cpu)
  out=$("$@")
  s1=$(server_cpu); p1=$(pg_cpu)
  awk -v o="$out" -v s0="$s0" -v s1="$s1" -v p0="$p0" -v p1="$p1" 'BEGIN{
    split(o, f, " "); n = f[5];
    printf "%s %.3f %.3f\n", o, (n ? 1000*(s1-s0)/n : 0), (n ? 1000*(p1-p0)/n : 0)}'
}

# ------------------------------------------------------------------ run
# page100's total comes from the totals cache after the first request (the statement only
# proves it current), so both HTTP workloads are compared with the records-only statement.
declare -A RES
for c in $CONNS; do
  for w in page100 page100_nototal; do
    [ $w = page100 ] && body=$BODY_TOTAL || body=$BODY_NOTOTAL
    log "HTTP $w c=$c ${DURATION}s ($TOOL)"
    RES[http_${w}_$c]=$(with_cpu http_run "$w" "$body" "$c")
  done
  log "pgbench page100_records c=$c ${DURATION}s"
  RES[pg_page100_records_$c]=$(with_cpu pg_run page100_records "$c")
done

# ------------------------------------------------------------------ report
{
  echo
  echo "# ckan-datastore load test, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# demo table $R ($total rows), ${DURATION}s per run; HTTP by $TOOL (1 thread), SQL by pgbench -M prepared"
  echo "# the HTTP server, its PostgreSQL and the load generator share this machine's cores;"
  echo "# 'ours ms/req': our server's CPU per request; 'PG ms/req': PostgreSQL's (every backend)"
  printf '%-34s %3s %9s %8s %8s %8s %8s %6s %12s %10s\n' what c "req/s" "p50 ms" "p90 ms" "p99 ms" requests errors "ours ms/req" "PG ms/req"
  for c in $CONNS; do
    for k in http_page100 http_page100_nototal pg_page100_records; do
      read -r rps p50 p90 p99 n err scpu pcpu <<<"${RES[${k}_$c]}"
      case $k in
        http_page100) label="HTTP page100 (total cached)" ;;
        http_page100_nototal) label="HTTP page100 include_total=false" ;;
        pg_page100_records) label="  SQL records only (ceiling)"; scpu=- ;;
      esac
      printf '%-34s %3s %9s %8s %8s %8s %8s %6s %12s %10s\n' "$label" "$c" "$rps" "$p50" "$p90" "$p99" "$n" "$err" "$scpu" "$pcpu"
    done
  done
  echo
  echo "# ratios HTTP / raw PostgreSQL (req/s: 1.00 = as fast as PostgreSQL alone; PG cpu: 1.00 = no extra work in PostgreSQL)"
  printf '%-34s %3s %8s %8s %8s\n' pair c "req/s" "p50" "PG cpu"
  for c in $CONNS; do
    for h in http_page100 http_page100_nototal; do
      read -r a_rps a_p50 _ _ _ _ _ a_pg <<<"${RES[${h}_$c]}"
      read -r b_rps b_p50 _ _ _ _ _ b_pg <<<"${RES[pg_page100_records_$c]}"
      printf '%-34s %3s %8s %8s %8s\n' "${h#http_} / page100_records" "$c" \
        "$(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN{printf "%.2f", a/b}')" \
        "$(awk -v a="$a_p50" -v b="$b_p50" 'BEGIN{printf "%.2f", a/b}')" \
        "$(awk -v a="$a_pg" -v b="$b_pg" 'BEGIN{printf "%.2f", (b > 0 ? a/b : 0)}')"
    done
  done
  echo
  echo "# raw outputs: $OUT"
} | tee "$OUT/summary.txt"
