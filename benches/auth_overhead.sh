#!/usr/bin/env bash
# Cost of access control: the same datastore_search requests against ckan-datastore with
# auth off (A) and auth on (B, one read of CKAN's main database per request, run
# concurrently with the page query), next to real CKAN and raw PostgreSQL measured in the
# same run. Requirement checked: an authorized request costs <= ~10% more with auth on.
#
#   benches/auth_overhead.sh                         # ~5 min: A, B, CKAN, pgbench
#   DURATION=5 WARMUP=1 CONNS="2" benches/auth_overhead.sh
#   ROUNDS=3 benches/auth_overhead.sh                # repeat A/B/CKAN/PG, report medians
#
# Needs (all on this machine):
#   - target/release/ckan-datastore (rebuilt with `cargo build --release` only when a file
#     under src/ or Cargo.toml/Cargo.lock is newer than the binary; NO_BUILD=1 never builds)
#   - the CKAN 2.12 oracle of /work/shared/oracle (CKAN on $CKAN_URL, its ini $CKAN_INI,
#     PostgreSQL on $PG_HOST:$PG_PORT with DBs datastore_default and ckan_default, role
#     datastore_default and the least-privilege role datastore_authz of
#     src/sql_assets/authz_role.sql, passwords = role names)
#   - the auth fixtures written by scripts/auth_matrix_vs_oracle.py ($STATE, default
#     target/authspec-state.json): the token of `authspec-member` and the table id of its
#     org's private dataset `authspec-private` (fixture R3); the public 100k-row table
#     22222222-2222-4222-8222-222222222222 (dataset oracle-golden)
#   - wrk (apt-get install wrk), pgbench + psql (postgresql / postgresql-contrib), curl,
#     python3 (stdlib only)
#
# What it does, per round (ROUNDS, default 1; rounds alternate A-B / B-A):
#   server A  `serve --access-control public` on $PORT_A   (auth off)
#   server B  `serve --ckan-db-url postgresql://datastore_authz:...@.../ckan_default` on $PORT_B
#   each started, checked (status of every workload, records equal to A's), loaded with
#   wrk (1 thread, $WARMUP s warm-up then $DURATION s at each of $CONNS), then stopped.
#   Workloads (POST JSON to /api/3/action/datastore_search):
#     anon_public    anonymous, {"resource_id": PUBLIC, "limit": 10}
#     token_public   same body, header Authorization: <authspec-member token>
#     token_private  {"resource_id": R3, "limit": 10} with the member token
#     anon_denied    R3 anonymously -> 403 (server B only; every response is non-2xx)
#   CKAN      workloads 1-3 at $CKAN_CONNS (default 2: it has 2 sync gunicorn workers)
#   pgbench   -M prepared, over TCP, $WARMUP s warm-up then $DURATION s at each of $CONNS:
#     verdict  VERDICT_SQL of src/auth/ckan_db.rs (copied from the source at run time) with
#              literals $1 = ARRAY[the member token's jti], $2 = ARRAY[R3], $3 = '{admin}', $4 = false,
#              as datastore_authz on ckan_default
#     page     SELECT json_agg(t) FROM (SELECT * FROM "PUBLIC" LIMIT 10) t
#              as datastore_default on datastore_default
# Then one summary table + ratios (B/A per workload and concurrency; B/CKAN; ours/raw PG),
# also written to $OUT/summary.txt. Raw outputs (wrk, pgbench, server logs, first
# responses, lua, SQL, per-round results) go to $OUT (default target/auth-bench/<UTC ts>).
# Servers started here are stopped on exit, error or Ctrl-C (trap; by their PID).
#
# Env knobs (defaults in brackets):
#   DURATION [10]  WARMUP [2]  CONNS ["2 8"]  CKAN_CONNS ["2"]  ROUNDS [1]
#   PORT_A [8811]  PORT_B [8812]  CKAN_URL [http://127.0.0.1:5000]
#   CKAN_INI [/work/shared/oracle/var/ckan.ini]  STATE [target/authspec-state.json]
#   MEMBER [authspec-member]  PRIVATE_DS [authspec-private]
#   PUBLIC_ID [22222222-2222-4222-8222-222222222222]  PG_HOST [127.0.0.1]  PG_PORT [5432]
#   AUTHZ_URL [postgresql://datastore_authz:datastore_authz@$PG_HOST:$PG_PORT/ckan_default]
#   SKIP_CKAN=1  SKIP_PG=1  NO_BUILD=1  READY_TIMEOUT [60]  RUST_LOG [warn]  OUT
#   WRK_TIMEOUT [10s] (per-request timeout in wrk)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-"2 8"}
CKAN_CONNS=${CKAN_CONNS:-"2"}
ROUNDS=${ROUNDS:-1}
PORT_A=${PORT_A:-8811}
PORT_B=${PORT_B:-8812}
CKAN_URL=${CKAN_URL:-http://127.0.0.1:5000}
CKAN_INI=${CKAN_INI:-/work/shared/oracle/var/ckan.ini}
STATE=${STATE:-$ROOT/target/authspec-state.json}
MEMBER=${MEMBER:-authspec-member}
PRIVATE_DS=${PRIVATE_DS:-authspec-private}
PUBLIC_ID=${PUBLIC_ID:-22222222-2222-4222-8222-222222222222}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
AUTHZ_URL=${AUTHZ_URL:-postgresql://datastore_authz:datastore_authz@$PG_HOST:$PG_PORT/ckan_default}
READY_TIMEOUT=${READY_TIMEOUT:-60}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
export RUST_LOG=${RUST_LOG:-warn}
OUT=${OUT:-$ROOT/target/auth-bench/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=$ROOT/target/release/ckan-datastore
PATH_SEARCH=/api/3/action/datastore_search

log() { printf '[auth_overhead %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
exec 2> >(tee -a "$OUT/run.log" >&2)

# ------------------------------------------------------------------ cleanup
SERVER_PID=
SERVER_NAME=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping server $SERVER_NAME (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server $SERVER_NAME still up after 10 s, SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  SERVER_NAME=
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  [ "$rc" = 0 ] || log "failed (exit $rc); partial outputs in $OUT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ tools + build
for t in curl wrk pgbench psql python3; do
  command -v "$t" >/dev/null || die "$t is required (Debian: apt-get install wrk postgresql-contrib curl python3)"
done
if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
    log "sources newer than $BIN: cargo build --release"
    cargo build --release --quiet
  fi
fi
[ -x "$BIN" ] || die "$BIN not found"
[ -f "$CKAN_INI" ] || die "CKAN ini $CKAN_INI not found"
[ -f "$STATE" ] || die "$STATE not found (run scripts/auth_matrix_vs_oracle.py first)"
for p in "$PORT_A" "$PORT_B"; do
  if curl -s -m 2 -o /dev/null "http://127.0.0.1:$p/"; then
    die "something already answers on 127.0.0.1:$p (stop it or set PORT_A/PORT_B)"
  fi
done

# ------------------------------------------------------------------ fixtures
read -r TOKEN R3 JTI < <(python3 - "$STATE" "$MEMBER" "$PRIVATE_DS" <<'EOF'
import base64, json, sys
st = json.load(open(sys.argv[1]))
tok = st["tokens"][sys.argv[2]]
r3 = st["ids"][sys.argv[3]]
p = tok.split(".")[1]
jti = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["jti"]
print(tok, r3, jti)
EOF
) || die "cannot read token/R3 from $STATE"
[ -n "${JTI:-}" ] || die "no jti in the $MEMBER token"
log "member=$MEMBER jti=$JTI R3=$R3 public=$PUBLIC_ID"

# workloads: name -> body and whether the member token is sent
declare -A WL_BODY WL_AUTH
WL_BODY[anon_public]="{\"resource_id\": \"$PUBLIC_ID\", \"limit\": 10}";  WL_AUTH[anon_public]=0
WL_BODY[token_public]="{\"resource_id\": \"$PUBLIC_ID\", \"limit\": 10}"; WL_AUTH[token_public]=1
WL_BODY[token_private]="{\"resource_id\": \"$R3\", \"limit\": 10}";       WL_AUTH[token_private]=1
WL_BODY[anon_denied]="{\"resource_id\": \"$R3\", \"limit\": 10}";         WL_AUTH[anon_denied]=0
WL_A="anon_public token_public token_private"
WL_B="anon_public token_public token_private anon_denied"
WL_CKAN="anon_public token_public token_private"
declare -A EXPECT
for w in $WL_B; do EXPECT[$w]=200; done
EXPECT[B_anon_denied]=403

for w in $WL_B; do
  {
    echo 'wrk.method = "POST"'
    echo "wrk.body = [[${WL_BODY[$w]}]]"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    [ "${WL_AUTH[$w]}" = 1 ] && echo "wrk.headers[\"Authorization\"] = \"$TOKEN\""
    cat <<'EOF'
function done(summary, latency, requests)
  local sock = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status, sock))
end
EOF
  } >"$OUT/$w.lua"
done

# ------------------------------------------------------------------ helpers
# one request, saving the body; prints the HTTP status
probe() {  # probe BASE WORKLOAD OUTFILE
  local args=(-s -m 30 -o "$3" -w '%{http_code}' -H 'Content-Type: application/json')
  [ "${WL_AUTH[$2]}" = 1 ] && args+=(-H "Authorization: $TOKEN")
  curl "${args[@]}" --data-binary "${WL_BODY[$2]}" "$1$PATH_SEARCH" || echo 000
}

# records of two responses equal? (JSON values; prints "same" or "DIFFERENT")
same_records() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    a, b = (json.load(open(f))["result"]["records"] for f in sys.argv[1:3])
    print("same" if a == b else "DIFFERENT")
except Exception as e:
    print("DIFFERENT(%s)" % e)
EOF
}

start_server() {  # start_server NAME PORT ARGS...
  local name=$1 port=$2; shift 2
  SERVER_NAME=$name
  log "starting $name: $BIN serve $* --listen 127.0.0.1:$port"
  "$BIN" serve "$@" --listen "127.0.0.1:$port" >>"$OUT/server_$name.log" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + READY_TIMEOUT)) st
  while :; do
    st=$(probe "http://127.0.0.1:$port" anon_public "$OUT/ready_$name.json")
    [ "$st" = 200 ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$OUT/server_$name.log" >&2; die "server $name exited"; }
    [ $SECONDS -lt $deadline ] || { tail -20 "$OUT/server_$name.log" >&2; die "server $name not ready after ${READY_TIMEOUT}s"; }
    sleep 0.3
  done
  log "server $name ready (pid $SERVER_PID)"
}

# status + records check of every workload before loading it
check_workloads() {  # check_workloads TARGET BASE WORKLOADS...
  local tgt=$1 base=$2 w st want f; shift 2
  for w in "$@"; do
    f=$OUT/first_${tgt}_$w.json
    st=$(probe "$base" "$w" "$f")
    want=${EXPECT[${tgt}_$w]:-${EXPECT[$w]}}
    echo "$tgt $w status=$st bytes=$(wc -c <"$f")" >>"$OUT/checks.txt"
    [ "$st" = "$want" ] || die "$tgt $w: HTTP $st, expected $want: $(head -c 300 "$f")"
    if [ "$want" = 200 ] && [ "$tgt" != A ] && [ -f "$OUT/first_A_$w.json" ]; then
      local cmp; cmp=$(same_records "$OUT/first_A_$w.json" "$f")
      echo "$tgt $w records vs A: $cmp" >>"$OUT/checks.txt"
      [ "$cmp" = same ] || log "WARNING: $tgt $w records differ from A's"
    fi
  done
}

# CPU accounting around each measured run (clock ticks): the server's own (utime+stime of
# SERVER_PID; -1 when no server of ours is up, i.e. CKAN) and the whole machine's busy time
# (wrk + server + PostgreSQL + anything else), each divided by the requests served.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_srv() { if [ -n "$SERVER_PID" ] && [ -r "/proc/$SERVER_PID/stat" ]; then awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; else echo -1; fi; }
cpu_all() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
per_req() {  # per_req TICKS0 TICKS1 REQUESTS -> microseconds per request, or -1
  awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICK_US" 'BEGIN{ if (a < 0 || n <= 0) print -1; else printf "%.0f", (b - a) * t / n }'
}

declare -A RES   # RES[round,target,workload,c] = "rps p50 p90 p99 requests non2xx sockerr srv_us/req all_us/req"
http_run() {  # http_run ROUND TARGET BASE WORKLOAD C
  local r=$1 tgt=$2 base=$3 w=$4 c=$5 raw line
  raw=$OUT/wrk_r${r}_${tgt}_${w}_c$c
  log "wrk $tgt $w c=$c (warm-up ${WARMUP}s, run ${DURATION}s; loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ "$WARMUP" != 0 ]; then
    timeout $((WARMUP + 60)) wrk -t 1 -c "$c" -d "${WARMUP}s" --timeout "$WRK_TIMEOUT" \
      -s "$OUT/$w.lua" "$base$PATH_SEARCH" >"$raw.warmup.txt" 2>&1 \
      || { cat "$raw.warmup.txt" >&2; die "wrk warm-up failed ($tgt $w c=$c)"; }
  fi
  local s0 a0 s1 a1 n
  s0=$(cpu_srv); a0=$(cpu_all)
  timeout $((DURATION + 60)) wrk -t 1 -c "$c" -d "${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
    -s "$OUT/$w.lua" "$base$PATH_SEARCH" >"$raw.txt" 2>&1 \
    || { cat "$raw.txt" >&2; die "wrk failed ($tgt $w c=$c)"; }
  s1=$(cpu_srv); a1=$(cpu_all)
  line=$(sed -n 's/^RESULT //p' "$raw.txt")
  [ -n "$line" ] || { cat "$raw.txt" >&2; die "no RESULT from wrk ($tgt $w c=$c)"; }
  n=$(echo "$line" | awk '{print $5}')
  line="$line $(per_req "$s0" "$s1" "$n") $(per_req "$a0" "$a1" "$n")"
  RES[$r,$tgt,$w,$c]=$line
  echo "$r $tgt $w $c $line" >>"$OUT/results.txt"
}

# ------------------------------------------------------------------ raw PostgreSQL statements
PG_AUTHZ="host=$PG_HOST port=$PG_PORT user=datastore_authz password=datastore_authz dbname=ckan_default"
PG_DS="host=$PG_HOST port=$PG_PORT user=datastore_default password=datastore_default dbname=datastore_default"
if [ "${SKIP_PG:-0}" != 1 ]; then
  python3 - "$ROOT/src/auth/ckan_db.rs" "$JTI" "$R3" >"$OUT/verdict.sql" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r'pub const VERDICT_SQL: &str = r#"(.*?)"#;', src, re.S)
if not m:
    sys.exit("VERDICT_SQL not found in " + sys.argv[1])
sql = m.group(1)
lit = lambda s: "'" + s.replace("'", "''") + "'"
# $1/$2 are arrays (one check per element: the server batches checks that arrive together)
subs = {"1": "ARRAY[" + lit(sys.argv[2]) + "]", "2": "ARRAY[" + lit(sys.argv[3]) + "]",
        "3": "'{admin}'", "4": "false"}
sql = re.sub(r"\$([1-4])\b", lambda m: subs[m.group(1)], sql)
if re.search(r"\$\d", sql):
    sys.exit("unsubstituted parameter left in VERDICT_SQL")
print(sql.rstrip() + ";")
EOF
  echo "SELECT json_agg(t) FROM (SELECT * FROM \"$PUBLIC_ID\" LIMIT 10) t;" >"$OUT/page.sql"
  # the statements must run and say what the server would conclude
  v=$(timeout 30 psql -X -q -A -t -F' ' -d "$PG_AUTHZ" -f "$OUT/verdict.sql") || die "psql verdict.sql failed"
  echo "verdict row (n token_found user_name sysadmin found resource_state public org_member creator collaborator): $v" >>"$OUT/checks.txt"
  read -r _ v_tok _ _ v_found _ _ v_member _ <<<"$v"
  [ "$v_tok $v_found $v_member" = "t t t" ] || die "verdict statement did not grant the member: $v"
  n=$(timeout 30 psql -X -q -A -t -d "$PG_DS" -f "$OUT/page.sql" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') \
    || die "psql page.sql failed"
  [ "$n" = 10 ] || die "page.sql returned $n records"
  echo "page.sql: $n records" >>"$OUT/checks.txt"
fi

pg_run() {  # pg_run ROUND NAME CONNSTR C
  local r=$1 name=$2 conn=$3 c=$4 dir j line
  dir=$OUT/pgbench_r${r}_${name}_c$c
  j=$(( c < $(nproc) ? c : $(nproc) ))
  mkdir -p "$dir"
  log "pgbench $name c=$c (warm-up ${WARMUP}s, run ${DURATION}s; loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ "$WARMUP" != 0 ]; then
    timeout $((WARMUP + 60)) pgbench -n -M prepared -f "$OUT/$name.sql" -c "$c" -j "$j" -T "$WARMUP" \
      "$conn" >"$dir/warmup.txt" 2>&1 || { cat "$dir/warmup.txt" >&2; die "pgbench warm-up failed ($name c=$c)"; }
  fi
  local a0 a1 n
  a0=$(cpu_all)
  timeout $((DURATION + 60)) pgbench -n -M prepared -f "$OUT/$name.sql" -c "$c" -j "$j" -T "$DURATION" \
      -l --log-prefix="$dir/log" "$conn" >"$dir/out.txt" 2>&1 \
    || { cat "$dir/out.txt" >&2; die "pgbench failed ($name c=$c)"; }
  a1=$(cpu_all)
  line=$(python3 - "$dir" <<'EOF'
import glob, gzip, os, re, shutil, sys
d = sys.argv[1]
lat = []
for f in glob.glob(os.path.join(d, "log.*")):
    with open(f) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                lat.append(int(parts[2]) / 1000.0)
    with open(f, "rb") as src, gzip.open(f + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(f)
lat.sort()
out = open(os.path.join(d, "out.txt")).read()
tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
failed = re.search(r"number of failed transactions: (\d+)", out)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print("%.1f %.3f %.3f %.3f %d %d 0" % (tps, pct(0.50), pct(0.90), pct(0.99), len(lat),
                                        int(failed.group(1)) if failed else 0))
EOF
) || die "cannot parse pgbench output ($name c=$c)"
  n=$(echo "$line" | awk '{print $5}')
  line="$line -1 $(per_req "$a0" "$a1" "$n")"
  RES[$r,PG,$name,$c]=$line
  echo "$r PG $name $c $line" >>"$OUT/results.txt"
}

# ------------------------------------------------------------------ run
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')  cores: $(nproc)  kernel: $(uname -r)"
  echo "binary: $BIN  mtime: $(date -u -r "$BIN" '+%Y-%m-%d %H:%M:%S UTC')  git: $(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (+uncommitted src changes)')"
  echo "DURATION=$DURATION WARMUP=$WARMUP CONNS=\"$CONNS\" CKAN_CONNS=\"$CKAN_CONNS\" ROUNDS=$ROUNDS"
  echo "wrk: $(wrk --version 2>&1 | head -1)"
  echo "pgbench: $(pgbench --version)"
  echo "top before the run:"; top -bn1 | head -15
} >"$OUT/env.txt" 2>&1

: >"$OUT/checks.txt"
: >"$OUT/results.txt"
ARGS_A=(--ckan-ini "$CKAN_INI" --access-control public)
ARGS_B=(--ckan-ini "$CKAN_INI" --ckan-db-url "$AUTHZ_URL")

run_A() {
  start_server A "$PORT_A" "${ARGS_A[@]}"
  check_workloads A "http://127.0.0.1:$PORT_A" $WL_A
  for c in $CONNS; do for w in $WL_A; do http_run "$1" A "http://127.0.0.1:$PORT_A" "$w" "$c"; done; done
  stop_server
}
run_B() {
  start_server B "$PORT_B" "${ARGS_B[@]}"
  check_workloads B "http://127.0.0.1:$PORT_B" $WL_B
  for c in $CONNS; do for w in $WL_B; do http_run "$1" B "http://127.0.0.1:$PORT_B" "$w" "$c"; done; done
  stop_server
}

for r in $(seq 1 "$ROUNDS"); do
  log "===== round $r/$ROUNDS"
  # (A's first responses are the reference for B's and CKAN's records check: A runs first in
  # round 1, then the order alternates to spread any drift evenly)
  if [ $((r % 2)) = 1 ]; then run_A "$r"; run_B "$r"; else run_B "$r"; run_A "$r"; fi
  if [ "${SKIP_CKAN:-0}" != 1 ]; then
    check_workloads CKAN "$CKAN_URL" $WL_CKAN
    for c in $CKAN_CONNS; do for w in $WL_CKAN; do http_run "$r" CKAN "$CKAN_URL" "$w" "$c"; done; done
  fi
  if [ "${SKIP_PG:-0}" != 1 ]; then
    for c in $CONNS; do
      pg_run "$r" verdict "$PG_AUTHZ" "$c"
      pg_run "$r" page "$PG_DS" "$c"
    done
  fi
done

# ------------------------------------------------------------------ report
python3 - "$OUT/results.txt" "$ROUNDS" "$CONNS" "$CKAN_CONNS" "$DURATION" "$WARMUP" \
  "$PUBLIC_ID" "$R3" >"$OUT/summary.txt" <<'EOF'
import statistics, sys
from collections import defaultdict
path, rounds, conns, ckan_conns, dur, warm, pub, r3 = sys.argv[1:9]
conns, ckan_conns = [int(c) for c in conns.split()], [int(c) for c in ckan_conns.split()]
runs = defaultdict(list)
for line in open(path):
    r, tgt, w, c, *v = line.split()
    runs[(tgt, w, int(c))].append([float(x) for x in v])
def med(key):
    """median over rounds of each column: rps p50 p90 p99 requests non2xx sockerr srv_us all_us"""
    v = runs.get(key)
    return [statistics.median(col) for col in zip(*v)] if v else None

print("# auth overhead, %s s per point after %s s warm-up, %s round(s) (medians), HTTP by wrk -t1,"
      " SQL by pgbench -M prepared over TCP" % (dur, warm, rounds))
print("# public table %s (100k rows), R3 = %s (private, member's org)" % (pub, r3))
print("# A = ckan-datastore auth off (--access-control public), B = auth on (ckan-db), CKAN = 2.12 gunicorn 2 sync workers")
print()
us = lambda x: "-" if x < 0 else "%.0f" % x
hdr = "%-6s %-14s %3s %9s %8s %8s %8s %8s %7s %5s %9s %9s" % ("target", "workload", "c", "req/s", "p50 ms", "p90 ms",
      "p99 ms", "requests", "non2xx", "sock", "srv us/rq", "all us/rq")
print(hdr); print("-" * len(hdr))
order = [("A", w) for w in ("anon_public", "token_public", "token_private")] + \
        [("B", w) for w in ("anon_public", "token_public", "token_private", "anon_denied")] + \
        [("CKAN", w) for w in ("anon_public", "token_public", "token_private")] + \
        [("PG", "verdict"), ("PG", "page")]
for c in sorted(set(conns) | set(ckan_conns)):
    for tgt, w in order:
        m = med((tgt, w, c))
        if m:
            print("%-6s %-14s %3d %9.1f %8.3f %8.3f %8.3f %8d %7d %5d %9s %9s" % (tgt, w, c, m[0], m[1], m[2], m[3], m[4],
                                                                               m[5], m[6], us(m[7]), us(m[8])))
    print()

def ratio(a, b, fmt="%.2f"):
    return fmt % (a / b) if a is not None and b else "n/a"

print("# CPU columns: 'srv us/rq' = our server process's CPU time per request; 'all us/rq' = the whole machine's")
print("# busy CPU per request (wrk + server + PostgreSQL + anything else running), from /proc, 10 ms ticks.")
print()
print("# auth on / auth off (B/A).  B/A req/s: 1.00 = no cost; cost = A_rps/B_rps - 1 (extra machine time per")
print("# request when saturated); p50/p99 ovh = B/A - 1; srv/all CPU = CPU per request B/A - 1.")
print("# Requirement: an authorized request costs <= ~10% more -> 'ok' when cost and p50 ovh are both <= 10%.")
print("%-14s %3s %9s %8s %8s %8s %8s %8s  %s" % ("workload", "c", "B/A rps", "cost", "p50 ovh", "p99 ovh", "srv CPU", "all CPU", "<=10%?"))
pct = lambda a, b: "%+.1f%%" % ((a / b - 1) * 100) if a >= 0 and b > 0 else "-"
for c in conns:
    for w in ("anon_public", "token_public", "token_private"):
        a, b = med(("A", w, c)), med(("B", w, c))
        if not (a and b):
            continue
        cost, p50 = a[0] / b[0] - 1, b[1] / a[1] - 1
        ok = "ok" if cost <= 0.10 and p50 <= 0.10 else "OVER"
        print("%-14s %3d %9.3f %8s %8s %8s %8s %8s  %s" % (w, c, b[0] / a[0], pct(a[0], b[0]), pct(b[1], a[1]),
              pct(b[3], a[3]), pct(b[7], a[7]), pct(b[8], a[8]), ok))
    a, d = med(("A", "anon_public", c)), med(("B", "anon_denied", c))
    if a and d:
        print("%-14s %3d %9.3f %8s %8s %8s %8s %8s  (403s, vs A anon_public)" % ("anon_denied", c, d[0] / a[0],
              pct(a[0], d[0]), pct(d[1], a[1]), pct(d[3], a[3]), pct(d[7], a[7]), pct(d[8], a[8])))
print()

if any(k[0] == "CKAN" for k in runs):
    print("# ours / CKAN (req/s: x times CKAN's throughput; p50: ours' median latency as a fraction of CKAN's)")
    print("%-15s %3s %12s %12s %12s %12s" % ("workload", "c", "B/CKAN rps", "A/CKAN rps", "B/CKAN p50", "A/CKAN p50"))
    for c in ckan_conns:
        for w in ("anon_public", "token_public", "token_private"):
            k, a, b = med(("CKAN", w, c)), med(("A", w, c)), med(("B", w, c))
            if k:
                print("%-15s %3d %12s %12s %12s %12s" % (w, c, ratio(b and b[0], k[0]), ratio(a and a[0], k[0]),
                                                          ratio(b and b[1], k[1], "%.3f"), ratio(a and a[1], k[1], "%.3f")))
    print()

if any(k[0] == "PG" for k in runs):
    print("# ours / raw PostgreSQL (req/s over pgbench tps at the same c; p50 ratio).  'page' = the page statement")
    print("# alone (no total); 'page+verdict' = 1/(1/page_tps + 1/verdict_tps), derived: both statements' CPU per request")
    print("%-15s %3s %10s %12s %12s %10s %12s" % ("workload", "c", "A/page", "B/page", "B/page+vrd", "B/verdict", "B/page p50"))
    for c in conns:
        pg, vd = med(("PG", "page", c)), med(("PG", "verdict", c))
        both = 1 / (1 / pg[0] + 1 / vd[0]) if pg and vd else None
        for w in ("anon_public", "token_public", "token_private"):
            a, b = med(("A", w, c)), med(("B", w, c))
            print("%-15s %3d %10s %12s %12s %10s %12s" % (w, c, ratio(a and a[0], pg and pg[0]), ratio(b and b[0], pg and pg[0]),
                                                     ratio(b and b[0], both), ratio(b and b[0], vd and vd[0]),
                                                     ratio(b and b[1], pg and pg[1])))
        if pg and vd:
            print("%-15s %3d   raw: page %.0f tps (p50 %.3f ms), verdict %.0f tps (p50 %.3f ms), page+verdict %.0f/s" % (
                "", c, pg[0], pg[1], vd[0], vd[1], both))
    print()

notes = []
for (tgt, w, c), v in sorted(runs.items()):
    m = med((tgt, w, c))
    if m[5] or m[6]:
        notes.append("%s %s c=%d: %d non-2xx, %d socket errors of %d (median)%s" % (
            tgt, w, c, m[5], m[6], m[4], "  <- expected: every anon_denied response is a 403" if w == "anon_denied" else ""))
if notes:
    print("# non-2xx / errors"); print("\n".join(notes)); print()
EOF
{
  cat "$OUT/summary.txt"
  echo "# checks: $OUT/checks.txt"
  sed 's/^/#   /' "$OUT/checks.txt"
  echo "# raw outputs: $OUT"
} | tee "$OUT/summary.full.txt"
