#!/usr/bin/env bash
# Dump benchmark: GET /datastore/dump/<id> of our server vs raw COPY in psql vs CKAN 2.12.
#
#   benches/dump_bench.sh                  # everything (needs the oracle at :5000 and its DB)
#   STEPS=raw,ab1m benches/dump_bench.sh   # a subset: raw, ab1m, big, compress, slow
#
# Steps (each one bounded by timeouts; the whole run by MAX_TOTAL seconds):
#   raw       COPY (SELECT _id, <user columns in table order> FROM "<1M id>" ORDER BY _id)
#             TO STDOUT csv, psql as the read role, to /dev/null, wall time (RUNS runs).
#             Also, for reference, the CKAN-shaped COPYs of bench/sql/dump_csv.sql (csv bytes
#             + header) and dump_json_lists.sql (one JSON array per row: the json dump's rows).
#   ab1m      compare.py: CKAN (A) vs ours (B), 1M csv and json dumps, RUNS rounds each:
#             wall, TTFB (first body byte), bytes, sha256 (A vs B), peak VmRSS sampled every
#             20 ms over the process tree (ours: one process; CKAN: gunicorn master+workers).
#   big       the same on the BIG table (5M rows): ours alone RUNS rounds, then CKAN vs ours
#             1 round unless BIG_CKAN=0 (bounded by BIG_CKAN_MAX seconds per dump).
#   compress  curl, 1M csv, identity/gzip/zstd, RUNS runs each: bytes on the wire, TTFB,
#             wall, decoded body's sha256 vs identity; server VmRSS sampled (20 ms).
#             Link model: transfer = max(wall, wire bytes / LINK_BPS).
#   slow      curl --limit-rate 2M for SLOW_SECONDS on the 1M csv, server VmRSS timeline,
#             then abort; afterwards: is the statement gone from pg_stat_activity?
#
# Our server is started here (BIN, a copy of target/release/ckan-datastore so rebuilds do
# not replace it under the benchmark) and stopped on exit. Results: $OUT (raw outputs,
# summary.txt).
set -euo pipefail

BIN=${BIN:-/tmp/ckds-bench}
PORT=${PORT:-8090}
OURS=http://127.0.0.1:$PORT
CKAN=${CKAN:-http://127.0.0.1:5000}
READ_URL=${READ_URL:-postgresql://datastore_default:datastore_default@127.0.0.1:5432/datastore_default}
RID=${RID:-33333333-3333-4333-8333-333333333333}
BIG_RID=${BIG_RID:-66666666-6666-4666-8666-666666666666}
RUNS=${RUNS:-2}
STEPS=${STEPS:-raw,ab1m,big,compress,slow}
BIG_CKAN=${BIG_CKAN:-1}
BIG_CKAN_MAX=${BIG_CKAN_MAX:-300}
SLOW_SECONDS=${SLOW_SECONDS:-5}
LINK_BPS=${LINK_BPS:-12500000}          # 100 Mbit/s
MAX_TOTAL=${MAX_TOTAL:-2400}            # watchdog for the whole script, seconds
BENCH=${BENCH:-/work/shared/bench}
GUNICORN_PID_FILE=${GUNICORN_PID_FILE:-/work/shared/oracle/var/gunicorn.pid}
OUT=${OUT:-/tmp/dumpbench/$(date -u +%Y%m%dT%H%M%SZ)}

mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/log.txt" >&2; }
say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }

SERVER_PID=""
WATCHDOG_PID=""
declare -a SAMPLERS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${SAMPLERS[@]}"; do kill "$p" 2>/dev/null; done
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
    fi
    [[ -n $WATCHDOG_PID ]] && kill "$WATCHDOG_PID" 2>/dev/null
    log "exit $rc; results in $OUT"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Watchdog: the whole run is bounded.
# (its sleep is killed with it, and it holds no pipe open: `dump_bench.sh | tail` returns)
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$MAX_TOTAL" & s=$!
    wait "$s" && { echo "watchdog: ${MAX_TOTAL}s elapsed" >>"$OUT/log.txt"; kill -TERM $$; }
) >/dev/null 2>&1 </dev/null &
WATCHDOG_PID=$!

# ------------------------------------------------------------------ helpers
# rss_sampler.py PID OUTFILE [TIMELINE_FILE]: VmRSS every 20 ms until SIGTERM, then writes
# "peak_vmrss_kb start_vmrss_kb end_vmrss_kb vmhwm_kb samples" (VmHWM is the process's
# lifetime high-water mark: never reset, so the last value covers every dump of the run).
cat >"$OUT/rss_sampler.py" <<'PY'
import signal, sys, time
pid, out = sys.argv[1], sys.argv[2]
tl = open(sys.argv[3], "w") if len(sys.argv) > 3 else None
def kb(key):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
start = kb("VmRSS"); peak = start; n = 0; t0 = time.monotonic(); last_tl = -1.0
with open(out + ".ready", "w") as f:  # the handler is in place: start_sampler may return
    f.write("%d\n" % start)
while not stop:
    v = kb("VmRSS"); n += 1
    peak = max(peak, v)
    t = time.monotonic() - t0
    if tl and t - last_tl >= 0.25:
        tl.write("%.2f %d\n" % (t, v)); tl.flush(); last_tl = t
    time.sleep(0.02)
with open(out, "w") as f:
    f.write("%d %d %d %d %d\n" % (peak, start, kb("VmRSS"), kb("VmHWM"), n))
PY

start_sampler() {  # start_sampler OUTFILE [TIMELINE]; sets SAMPLER_PID
    python3 "$OUT/rss_sampler.py" "$SERVER_PID" "$@" &
    SAMPLER_PID=$!
    SAMPLERS+=("$SAMPLER_PID")
    for _ in $(seq 100); do [[ -e $1.ready ]] && break; sleep 0.05; done
}
stop_sampler() {
    kill -TERM "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
}
now() { date +%s.%N; }
mb() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
psql_ro() { PGCONNECT_TIMEOUT=10 psql "$READ_URL" -X -v ON_ERROR_STOP=1 "$@"; }
server_kb() { awk -v k="$1:" '$1==k{print $2}' "/proc/$SERVER_PID/status"; }

# ------------------------------------------------------------------ preflight
for t in curl psql python3 gzip zstd sha256sum timeout; do
    command -v "$t" >/dev/null || { log "missing tool: $t"; exit 2; }
done
[[ -x $BIN ]] || { log "no binary at $BIN (cp target/release/ckan-datastore $BIN)"; exit 2; }
curl -sf --max-time 10 -o /dev/null "$CKAN/api/3/action/status_show" \
    || { log "CKAN oracle not answering at $CKAN"; exit 2; }
GUNICORN_PID=$(cat "$GUNICORN_PID_FILE")
if curl -s --max-time 2 -o /dev/null "$OURS/"; then
    log "something already listens on port $PORT"; exit 2
fi
rows() { psql_ro -Atc "SELECT count(*) FROM \"$1\"" 2>/dev/null || echo 0; }
ROWS=$(rows "$RID")
BIG_ROWS=$(rows "$BIG_RID")
# _id and the user columns in table order (not _full_text)
COLS=$(psql_ro -Atc "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
    FROM pg_attribute WHERE attrelid = '\"$RID\"'::regclass AND attnum > 0
    AND NOT attisdropped AND attname <> '_full_text'")

{
    echo "# dump_bench $(date -u +%Y-%m-%dT%H:%M:%SZ)  host $(hostname)  cpus $(nproc)"
    echo "# binary $BIN sha256 $(sha256sum "$BIN" | cut -c1-16)  git $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "# table $RID rows=$ROWS   big $BIG_RID rows=$BIG_ROWS   runs=$RUNS"
    echo "# loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$SUMMARY"

# ------------------------------------------------------------------ our server
log "starting $BIN on :$PORT"
"$BIN" serve --all-tables-public --listen "127.0.0.1:$PORT" --site-url "$CKAN" \
    --read-url "$READ_URL" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
healthy=0
for _ in $(seq 100); do
    if curl -sf --max-time 2 -o /dev/null "$OURS/healthz"; then healthy=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server died"; cat "$OUT/server.log" >&2; exit 2; }
    sleep 0.2
done
if [[ $healthy != 1 ]]; then log "server not healthy after 20 s"; exit 2; fi
say "# our server pid $SERVER_PID, VmRSS at start $(mb "$(server_kb VmRSS)") MB"

# ------------------------------------------------------------------ raw COPY
if has_step raw; then
    say ""
    say "## raw COPY (psql, read role, to /dev/null)"
    RAW_SQL="COPY (SELECT $COLS FROM \"$RID\" ORDER BY _id) TO STDOUT csv"
    echo "$RAW_SQL" >"$OUT/raw_copy.sql"
    sed "s/{R}/$RID/g" "$BENCH/sql/dump_csv.sql" >"$OUT/shaped_copy.sql"
    sed "s/{R}/$RID/g" "$BENCH/sql/dump_json_lists.sql" >"$OUT/shaped_json_copy.sql"
    say "raw: $RAW_SQL"
    say "raw bytes: $(PGCONNECT_TIMEOUT=10 timeout 120 psql "$READ_URL" -X -f "$OUT/raw_copy.sql" | wc -c)  (untimed pass, also warms the cache)"
    names=raw
    if PGCONNECT_TIMEOUT=10 timeout 120 psql "$READ_URL" -X -v ON_ERROR_STOP=1 \
        -f "$OUT/shaped_copy.sql" >/dev/null 2>"$OUT/shaped_copy.err"; then
        names="raw shaped shaped_json"
    else
        say "shaped COPYs ($BENCH/sql/dump_csv.sql, dump_json_lists.sql) do not fit this table, skipped"
    fi
    for name in $names; do
        for r in $(seq "$RUNS"); do
            t0=$(now)
            PGCONNECT_TIMEOUT=10 timeout 120 psql "$READ_URL" -X -v ON_ERROR_STOP=1 \
                -f "$OUT/${name}_copy.sql" >/dev/null
            t1=$(now)
            w=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
            echo "$name $r $w" >>"$OUT/raw_copy.txt"
            say "copy_$name run $r: wall ${w} s"
        done
    done
fi

# ------------------------------------------------------------------ A/B with compare.py
compare() {  # compare NAME RESOURCE ROUNDS MAXS A [B] -- PIDS
    local name=$1 res=$2 rounds=$3 maxs=$4; shift 4
    log "compare.py $name"
    timeout $(( rounds * 4 * maxs + 120 )) python3 "$BENCH/compare.py" "$@" \
        --resource "$res" --only dump_csv_1m,dump_json_1m \
        --dump-rounds "$rounds" --dump-max-seconds "$maxs" \
        --json "$OUT/$name.json" 2>&1 | tee "$OUT/$name.txt" | grep -v '^#' | tee -a "$SUMMARY" \
        || log "compare.py $name failed or timed out (see $OUT/$name.txt)"
}
if has_step ab1m; then
    say ""
    say "## 1M: CKAN (A) vs ours (B), compare.py, $RUNS rounds"
    # untimed warm-up of our server's path (connection pool, plan cache)
    curl -s --max-time 60 -o /dev/null "$OURS/datastore/dump/$RID?limit=10" || true
    compare ab1m "$RID" "$RUNS" 300 "$CKAN" "$OURS" --label-a ckan --label-b ours \
        --pid-a "$GUNICORN_PID" --pid-b "$SERVER_PID"
fi

if has_step big; then
    say ""
    if [[ $BIG_ROWS -lt 1000000 ]]; then
        say "## big table $BIG_RID: missing or < 1M rows ($BIG_ROWS), skipped"
    else
        say "## big ($BIG_ROWS rows): ours alone, $RUNS rounds"
        compare big_ours "$BIG_RID" "$RUNS" 300 "$OURS" --label-a ours --pid-a "$SERVER_PID"
        if [[ $BIG_CKAN == 1 ]]; then
            say "## big: CKAN (A) vs ours (B), 1 round, CKAN cut at ${BIG_CKAN_MAX}s"
            compare big_ab "$BIG_RID" 1 "$BIG_CKAN_MAX" "$CKAN" "$OURS" --label-a ckan \
                --label-b ours --pid-a "$GUNICORN_PID" --pid-b "$SERVER_PID"
        fi
    fi
fi

# ------------------------------------------------------------------ compression
if has_step compress; then
    say ""
    say "## compression, 1M csv, curl on loopback; link model at $LINK_BPS B/s"
    ref=""
    for enc in identity gzip zstd; do
        case $enc in
            identity) dec=cat ;;
            gzip) dec="gzip -dc" ;;
            zstd) dec="zstd -dcq" ;;
        esac
        for r in $(seq "$RUNS"); do
            start_sampler "$OUT/rss_$enc.$r"
            # -w goes to a file; the body is decoded and hashed on the fly
            timeout 200 curl -sS --max-time 180 -H "Accept-Encoding: $enc" -D "$OUT/hdr_$enc.$r" \
                -w '%{size_download} %{time_starttransfer} %{time_total} %{http_code}\n' \
                -o >($dec | sha256sum | cut -d' ' -f1 >"$OUT/sha_$enc.$r") \
                "$OURS/datastore/dump/$RID" >"$OUT/curl_$enc.$r"
            stop_sampler
            for _ in $(seq 100); do [[ -s $OUT/sha_$enc.$r ]] && break; sleep 0.1; done
            read -r bytes ttfb wall code <"$OUT/curl_$enc.$r"
            read -r peak _ _ hwm _ <"$OUT/rss_$enc.$r"
            sha=$(cat "$OUT/sha_$enc.$r")
            [[ -z $ref ]] && ref=$sha
            ce=$(awk -F': ' 'tolower($1)=="content-encoding"{gsub("\r","",$2);print $2}' "$OUT/hdr_$enc.$r")
            link=$(awk -v b="$bytes" -v w="$wall" -v bps="$LINK_BPS" \
                'BEGIN{t=b/bps; if (w>t) t=w; printf "%.2f", t}')
            say "$(printf '%-8s run %d: status %s content-encoding %-5s wire %10d B  ttfb %6.3f s  wall %6.2f s  link-model %6.2f s  peakRSS %s MB  decoded sha %s %s' \
                "$enc" "$r" "$code" "${ce:--}" "$bytes" "$ttfb" "$wall" "$link" "$(mb "$peak")" \
                "${sha:0:12}" "$([[ $sha == "$ref" ]] && echo same || echo DIFFERENT)")"
        done
    done
fi

# ------------------------------------------------------------------ slow client
if has_step slow; then
    say ""
    say "## slow client: curl --limit-rate 2M for ${SLOW_SECONDS}s on the 1M csv, then abort"
    start_sampler "$OUT/rss_slow" "$OUT/rss_slow_timeline.txt"
    set +e
    curl -sS --limit-rate 2M --max-time "$SLOW_SECONDS" -o /dev/null \
        -w '%{size_download} %{time_total}\n' "$OURS/datastore/dump/$RID" >"$OUT/curl_slow" 2>/dev/null
    set -e
    sleep 1
    stop_sampler
    read -r sbytes stime <"$OUT/curl_slow"
    read -r peak start end hwm n <"$OUT/rss_slow"
    say "received $sbytes B in $stime s; server VmRSS start $(mb "$start") MB, peak $(mb "$peak") MB, 1 s after abort $(mb "$end") MB ($n samples)"
    say "VmRSS timeline (s MB): $(awk '{printf "%s:%.1f ", $1, $2/1024}' "$OUT/rss_slow_timeline.txt")"
    sleep 1
    left=$(psql_ro -Atc "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle'
        AND query LIKE '%$RID%' AND pid <> pg_backend_pid()")
    say "statements on the table still active 2 s after the abort: $left"
    curl -sf --max-time 10 -o /dev/null "$OURS/healthz" && say "server healthy after the abort"
fi

say ""
say "# server lifetime VmHWM (all dumps of this run): $(mb "$(server_kb VmHWM)") MB, VmRSS now $(mb "$(server_kb VmRSS)") MB"
say "# loadavg at end $(cut -d' ' -f1-3 /proc/loadavg)"
