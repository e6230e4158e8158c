#!/usr/bin/env bash
# One DataTables draw, CKAN 2.12's own endpoint vs ours: `POST /datatables/ajax/<view_id>` with a
# global search, a sort by two columns and a page of 10, form-encoded exactly as DataTables
# 1.12 (CKAN's datatablesview.js, server-side mode) posts it, on the 1M-row oracle table.
#
#   benches/datatables_draw.sh                       # ~3 min once the machine is idle
#   N=50 DURATION=20 benches/datatables_draw.sh
#   TERM_Q=valley SORT="day desc,score asc" benches/datatables_draw.sh
#   NO_BUILD=1 NO_WAIT=1 benches/datatables_draw.sh  # no cargo build, no wait for an idle machine
#
# Needs: the CKAN 2.12 oracle of /work/shared/oracle (CKAN on $CKAN_URL with the
# datatables_view plugin, sysadmin token $TOKEN_FILE, ini $CKAN_INI; the public 1M-row table
# $RESOURCE in dataset oracle-tables; PostgreSQL with the datastore_authz role of
# src/sql_assets/authz_role.sql), target/release/ckan-datastore (rebuilt with `cargo build
# --release` only when src/, Cargo.toml or Cargo.lock is newer; NO_BUILD=1 never builds), wrk,
# curl, python3 (stdlib only).
#
# What it does:
#  0. waits (unless NO_WAIT=1) until no rustc and no `bash .ci/run` has been seen for $IDLE_FOR s
#     (2-core box: a compile next to the benchmark halves every number), up to $WAIT_MAX s; it
#     waits so again before every measured phase, and a phase during which one was seen (2 s
#     sampling, busy.log) is redone, up to $RETRIES tries (the busy try kept as *.busyN);
#  1. creates, idempotently as sysadmin, the view $VIEW_ID (resource_view_create, view_type
#     datatables_view, default config) on $RESOURCE; the same view id is used on both servers;
#  2. reads the columns with datastore_info and builds the draw: columns 0 = `_id` (name '',
#     searchable false) + one per field, `order[0]`/`order[1]` from $SORT, `start`, `length`
#     ($LENGTH), `search[value]` = $TERM_Q, `filters=` (empty), jQuery.param's encoding,
#     Content-Type `application/x-www-form-urlencoded; charset=UTF-8`, X-Requested-With;
#     anonymous (the dataset is public), as a visitor's browser sends it;
#  3. starts ours (`serve --ckan-ini … --ckan-db-url …datastore_authz… --listen 127.0.0.1:$PORT`,
#     access control on; stopped on exit by its PID);
#  4. byte-compares CKAN's and our body (and Content-Type) for three draws: the draw, its
#     second page (start=10), the draw with another term; saved as compare_*.{ckan,ours}.*;
#  5. sequential latency, requests interleaved CKAN/ours (one connection per request, as
#     gunicorn's sync workers close them anyway), $WARM ($WARM_COLD for cold) warm-up + $N
#     measured, three variants:
#       same    the identical draw N times (start=0)
#       paging  the same search paged: start=10,20,… (draw=2,3,…)
#       cold    a different search term per draw (start=0): our totals cache cannot help
#     every measured pair of bodies is byte-compared too (mismatch counts in the summary);
#  6. throughput: wrk -t1 -c$CONNS, $WRK_WARMUP s warm-up (discarded) + $DURATION s, CKAN then
#     ours, for `same` (static body) and `paging` (lua: start cycles 0..$PAGES*10, draw counts);
#  7. our totals-cache counters (GET /metrics) before/after each phase; summary table with
#     ratios to $OUT/summary.txt (and stdout); a phase kept although it overlapped a compile/CI
#     is marked BUSY there.
# Raw outputs (forms, bodies, headers, per-request CSVs, wrk outputs, lua, metrics, server log)
# go to $OUT (default target/datatables-bench/<UTC timestamp>).
#
# Env knobs [defaults]: CKAN_URL [http://127.0.0.1:5000]  PORT [8830]
#   RESOURCE [33333333-3333-4333-8333-333333333333]  VIEW_ID [d7000000-0000-4000-8000-000000000033]
#   TERM_Q [river] (98,509 of 1M rows match `river:*`)  SORT ["category asc,created desc"]  LENGTH [10]
#     (pick a sort without ties in the pages fetched, or the two servers may legitimately order
#     tied rows differently: `amount` has 2% NULLs, which `desc` puts first, all tied; the
#     first duplicate (category, created) among the `river` matches is at row 10,829)
#   COLD_TERMS [33 other words of the table's `name` vocabulary; the first one is used by the
#     comparison, the others by `cold`: each ~10% of the rows. Left out: charlie, november, apple,
#     yankee, cherry: `_full_text` is built with the `english` configuration (stems charli,
#     novemb, appl, yanke, cherri) while DataTables searches with `simple`, so in CKAN too they
#     match 0 rows and cost ~3x a normal draw (lossy GiST index, every row rechecked)]
#   N [30]  WARM [5]  WARM_COLD [2] (warm-up draws of `cold`; N + WARM_COLD <= #COLD_TERMS - 1)
#   CONNS [2]  DURATION [10]  WRK_WARMUP [2]  PAGES [50]  WRK_TIMEOUT [30s]
#   CKAN_INI [/work/shared/oracle/var/ckan.ini]  TOKEN_FILE [/work/shared/oracle/var/token]
#   CKAN_DB_URL [postgresql://datastore_authz:datastore_authz@127.0.0.1:5432/ckan_default]
#   RUST_LOG [warn]  NO_BUILD  NO_WAIT  WAIT_MAX [3600]  IDLE_FOR [30]  RETRIES [3; 1 with NO_WAIT=1]
#   READY_TIMEOUT [60]  OUT
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CKAN_URL=${CKAN_URL:-http://127.0.0.1:5000}
PORT=${PORT:-8830}
OURS_URL=http://127.0.0.1:$PORT
RESOURCE=${RESOURCE:-33333333-3333-4333-8333-333333333333}
VIEW_ID=${VIEW_ID:-d7000000-0000-4000-8000-000000000033}
TERM_Q=${TERM_Q:-river}
SORT=${SORT:-"category asc,created desc"}
LENGTH=${LENGTH:-10}
COLD_TERMS=${COLD_TERMS:-"tango ocean delta island desert juliet kilo victor golf hotel oscar bravo whiskey zulu forest echo valley uniform quebec mountain sierra canyon lemon romeo mike papa banana alpha melon xray india foxtrot lima"}
N=${N:-30}
WARM=${WARM:-5}
WARM_COLD=${WARM_COLD:-2}
CONNS=${CONNS:-2}
DURATION=${DURATION:-10}
WRK_WARMUP=${WRK_WARMUP:-2}
PAGES=${PAGES:-50}
WRK_TIMEOUT=${WRK_TIMEOUT:-30s}
CKAN_INI=${CKAN_INI:-/work/shared/oracle/var/ckan.ini}
TOKEN_FILE=${TOKEN_FILE:-/work/shared/oracle/var/token}
CKAN_DB_URL=${CKAN_DB_URL:-postgresql://datastore_authz:datastore_authz@127.0.0.1:5432/ckan_default}
WAIT_MAX=${WAIT_MAX:-3600}
IDLE_FOR=${IDLE_FOR:-30}
RETRIES=${RETRIES:-3}
[ "${NO_WAIT:-0}" = 1 ] && RETRIES=1
READY_TIMEOUT=${READY_TIMEOUT:-60}
export RUST_LOG=${RUST_LOG:-warn}
OUT=${OUT:-$ROOT/target/datatables-bench/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=$ROOT/target/release/ckan-datastore
AJAX=/datatables/ajax/$VIEW_ID

log() { printf '[datatables_draw %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
exec 2> >(tee -a "$OUT/run.log" >&2)
printf '%q ' "$0" "$@" >"$OUT/command.txt"; echo >>"$OUT/command.txt"
env | grep -E '^(CKAN_URL|PORT|RESOURCE|VIEW_ID|TERM_Q|SORT|LENGTH|COLD_TERMS|N|WARM|WARM_COLD|CONNS|DURATION|WRK_WARMUP|PAGES|NO_BUILD|NO_WAIT)=' >>"$OUT/command.txt" || true

# ------------------------------------------------------------------ cleanup
SERVER_PID=
WATCH_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WATCH_PID" ]; then kill "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then log "stopping our server (pid $SERVER_PID)"; stop_server; fi
  [ "$rc" = 0 ] || log "failed (exit $rc); partial outputs in $OUT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ idle machine, tools, build
busy() { pgrep -f rustc >/dev/null || pgrep -f "bash .ci/run" >/dev/null; }
wait_idle() {  # until nothing was busy for $IDLE_FOR s in a row (CI pauses between its steps)
  [ "${NO_WAIT:-0}" = 1 ] && return 0
  local t0=$SECONDS idle_since=$SECONDS said=
  while [ $((SECONDS - idle_since)) -lt "$IDLE_FOR" ]; do
    if busy; then
      [ -n "$said" ] || { log "waiting for rustc / .ci/run to be gone for ${IDLE_FOR}s (max ${WAIT_MAX}s)"; said=1; }
      idle_since=$SECONDS
    fi
    [ $((SECONDS - t0)) -lt "$WAIT_MAX" ] || die "machine still busy after ${WAIT_MAX}s (NO_WAIT=1 to measure anyway)"
    sleep 2
  done
}
# every 2 s, note whether a compile or CI is running: phases that overlap one are flagged
watch_busy() { while :; do busy && date +%s >>"$OUT/busy.log"; sleep 2; done; }
phase() { echo "$1 $2 $(date +%s)" >>"$OUT/phases.log"; }  # phase NAME start|end
overlapped() {  # overlapped START END: was a busy sample taken in [START-2, END]?
  awk -v s="$1" -v e="$2" '$1 >= s - 2 && $1 <= e { f = 1 } END { exit !f }' "$OUT/busy.log"
}
for t in curl wrk python3; do
  command -v "$t" >/dev/null || die "$t is required (Debian: apt-get install wrk curl python3)"
done
wait_idle
touch "$OUT/busy.log"
watch_busy &
WATCH_PID=$!
if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null)" ]; then
    log "sources newer than $BIN: cargo build --release"
    cargo build --release --quiet
  fi
fi
[ -x "$BIN" ] || die "$BIN not found"
[ -f "$CKAN_INI" ] || die "CKAN ini $CKAN_INI not found"
[ -f "$TOKEN_FILE" ] || die "sysadmin token $TOKEN_FILE not found"
TOKEN=$(cat "$TOKEN_FILE")
curl -sf -m 10 -o /dev/null "$CKAN_URL/api/3/action/status_show" || die "CKAN does not answer on $CKAN_URL"
if curl -s -m 2 -o /dev/null "$OURS_URL/"; then die "something already answers on $OURS_URL (set PORT)"; fi

# ------------------------------------------------------------------ the Python helper
cat >"$OUT/dt.py" <<'PYEOF'
"""Helper of benches/datatables_draw.sh: view set-up, the DataTables form, sequential runs."""
import http.client, json, statistics, sys, time, urllib.parse, urllib.request
from urllib.parse import quote

FORM_CT = "application/x-www-form-urlencoded; charset=UTF-8"  # jQuery's $.ajax default
HEADERS = {"Content-Type": FORM_CT, "X-Requested-With": "XMLHttpRequest",
           "Accept": "application/json, text/javascript, */*; q=0.01"}


def api(base, action, data, token=None):
    req = urllib.request.Request(f"{base}/api/3/action/{action}", json.dumps(data).encode(),
                                 {"Content-Type": "application/json",
                                  **({"Authorization": token} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def setup(base, token, resource, view_id):
    """Idempotent: the view exists on `resource` with view_type datatables_view. Prints the
    field ids (datastore_info order)."""
    cur = api(base, "resource_view_show", {"id": view_id}, token)
    r = cur.get("result") or {}
    if cur.get("success") and (r.get("resource_id") != resource
                               or r.get("view_type") != "datatables_view"):
        d = api(base, "resource_view_delete", {"id": view_id}, token)
        assert d.get("success"), d
        cur = {}
    if not cur.get("success"):
        c = api(base, "resource_view_create",
                {"id": view_id, "resource_id": resource, "view_type": "datatables_view",
                 "title": "datatables_draw bench"}, token)
        assert c.get("success"), c
        print(f"created view {view_id}", file=sys.stderr)
    info = api(base, "datastore_info", {"id": resource}, token)
    assert info.get("success"), info
    print(" ".join(f["id"] for f in info["result"]["fields"]))


def enc(v):
    """jQuery.param: encodeURIComponent, then %20 -> '+'."""
    if v is True:
        v = "true"
    elif v is False:
        v = "false"
    return quote(str(v), safe="-_.!~*'()").replace("%20", "+")


def form(cols, sort, draw=1, start=0, length=10, search=""):
    """What DataTables 1.12 posts for CKAN's view: column 0 is _id (name '', not searchable),
    then one column per field (data = name = field id); the ajax.data hook adds `filters`."""
    allcols = [("_id", "", False)] + [(c, c, True) for c in cols]
    idx = {d: i for i, (d, _, _) in enumerate(allcols)}
    p = [("draw", draw)]
    for i, (data, name, searchable) in enumerate(allcols):
        p += [(f"columns[{i}][data]", data), (f"columns[{i}][name]", name),
              (f"columns[{i}][searchable]", searchable), (f"columns[{i}][orderable]", True),
              (f"columns[{i}][search][value]", ""), (f"columns[{i}][search][regex]", False)]
    for i, part in enumerate(s.strip() for s in sort.split(",")):
        col, d = part.split()
        p += [(f"order[{i}][column]", idx[col]), (f"order[{i}][dir]", d)]
    p += [("start", start), ("length", length), ("search[value]", search),
          ("search[regex]", False), ("filters", "")]
    return "&".join(enc(k) + "=" + enc(v) for k, v in p)


def post(url, path, body):
    u = urllib.parse.urlsplit(url)
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    c.request("POST", path, body.encode(), HEADERS)
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t0
    c.close()
    return r.status, data, dt * 1000


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def seq(variant, ckan, ours, path, cols, sort, length, term, cold_terms, n, warm, out):
    """Interleaved CKAN/ours, `warm` discarded + `n` measured draws; CSV per request, JSON
    summary on stdout."""
    cold = cold_terms.split()
    if variant == "cold" and len(cold) < n + warm:
        sys.exit(f"cold needs {n + warm} COLD_TERMS, got {len(cold)}")
    rows, lat = [], {"ckan": [], "ours": []}
    mism = bad = 0
    for i in range(warm + n):
        if variant == "same":
            body = form(cols, sort, 1, 0, length, term)
        elif variant == "paging":
            body = form(cols, sort, i + 2, 10 * (i + 1), length, term)
        else:
            body = form(cols, sort, i + 2, 0, length, cold[i])
        res = {}
        # alternate who goes first, so neither always runs right after the other's query
        order = [("ckan", ckan), ("ours", ours)] if i % 2 == 0 else [("ours", ours), ("ckan", ckan)]
        for name, url in order:
            res[name] = post(url, path, body)
        same = res["ckan"][1] == res["ours"][1]
        ok = res["ckan"][0] == 200 and res["ours"][0] == 200
        measured = i >= warm
        if measured:
            mism += not same
            bad += not ok
            for k in lat:
                lat[k].append(res[k][2])
        try:
            filtered = json.loads(res["ckan"][1])["recordsFiltered"]
        except (ValueError, KeyError):
            filtered = ""
        rows.append((i, measured, cold[i] if variant == "cold" else term, filtered,
                     res["ckan"][0], res["ours"][0], f"{res['ckan'][2]:.2f}",
                     f"{res['ours'][2]:.2f}", int(same), len(res["ckan"][1]),
                     len(res["ours"][1])))
        if not same and mism <= 3 and measured:
            open(f"{out}/seq_{variant}_mismatch_{i}.ckan", "wb").write(res["ckan"][1])
            open(f"{out}/seq_{variant}_mismatch_{i}.ours", "wb").write(res["ours"][1])
    with open(f"{out}/seq_{variant}.csv", "w") as f:
        f.write("i,measured,term,records_filtered,ckan_status,ours_status,ckan_ms,ours_ms,same_body,ckan_bytes,ours_bytes\n")
        for r in rows:
            f.write(",".join(map(str, r)) + "\n")
    s = {"variant": variant, "n": n, "mismatches": mism, "non200": bad}
    for k, xs in lat.items():
        s[k] = {"p50": statistics.median(xs), "p90": pct(xs, 90), "mean": statistics.mean(xs),
                "min": min(xs), "max": max(xs)}
    print(json.dumps(s))


def explain(fa, fb):
    """What differs between two draw bodies that are not byte-identical."""
    try:
        a, b = (json.load(open(f)) for f in (fa, fb))
    except ValueError as e:
        return print(f"not JSON: {e}")
    keys = sorted(k for k in set(a) | set(b) if k != "data" and a.get(k) != b.get(k))
    ids = lambda d: [r.get("DT_RowId") for r in d.get("data", [])]  # noqa: E731
    if a == b:
        print("same JSON, different bytes")
    elif not keys and sorted(map(json.dumps, a["data"])) == sorted(map(json.dumps, b["data"])):
        print("same rows in another order")
    else:
        print(f"keys differing: {keys}; rows CKAN {ids(a)} ours {ids(b)}")


if __name__ == "__main__":
    cmd, *a = sys.argv[1:]
    if cmd == "explain":
        explain(*a)
    elif cmd == "setup":
        setup(*a)
    elif cmd == "form":  # cols sort draw start length search
        print(form(a[0].split(), a[1], int(a[2]), int(a[3]), int(a[4]), a[5]), end="")
    elif cmd == "seq":  # variant ckan ours path cols sort length term cold n warm out
        seq(a[0], a[1], a[2], a[3], a[4].split(), a[5], int(a[6]), a[7], a[8], int(a[9]),
            int(a[10]), a[11])
PYEOF

# ------------------------------------------------------------------ view + columns
COLS=$(python3 "$OUT/dt.py" setup "$CKAN_URL" "$TOKEN" "$RESOURCE" "$VIEW_ID") || die "view set-up failed"
log "view $VIEW_ID on $RESOURCE; columns: _id $COLS; search '$TERM_Q'; sort '$SORT'; length $LENGTH"
echo "$COLS" >"$OUT/columns.txt"
form() { python3 "$OUT/dt.py" form "$COLS" "$SORT" "$@"; }  # form DRAW START LENGTH SEARCH
form 1 0 "$LENGTH" "$TERM_Q" >"$OUT/form_draw.txt"
form 2 10 "$LENGTH" "$TERM_Q" >"$OUT/form_page2.txt"
COLD_FIRST=${COLD_TERMS%% *}
form 1 0 "$LENGTH" "$COLD_FIRST" >"$OUT/form_other_term.txt"

# ------------------------------------------------------------------ our server
start_server() {
  log "starting ours on $OURS_URL"
  "$BIN" serve --ckan-ini "$CKAN_INI" --ckan-db-url "$CKAN_DB_URL" --listen "127.0.0.1:$PORT" \
    >>"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 $((READY_TIMEOUT * 10))); do
    curl -s -m 1 -o /dev/null "$OURS_URL/metrics" && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "our server exited (see $OUT/server.log)"
    sleep 0.1
  done
  curl -sf -m 2 -o /dev/null "$OURS_URL/metrics" || die "our server not ready after ${READY_TIMEOUT}s"
}
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
start_server
git -C "$ROOT" rev-parse --short HEAD >"$OUT/git_head.txt" 2>/dev/null || true
git -C "$ROOT" status --short >>"$OUT/git_head.txt" 2>/dev/null || true

metrics() { curl -s -m 5 "$OURS_URL/metrics" | grep -E '^ckan_datastore_totals_cache_(hits|misses|invalidations)_total ' | awk '{printf "%s=%s ", $1, $2}' | sed 's/ckan_datastore_totals_cache_//g; s/_total=/=/g'; }

# ------------------------------------------------------------------ 4. same body?
CURL_H=(-H "Content-Type: application/x-www-form-urlencoded; charset=UTF-8" -H "X-Requested-With: XMLHttpRequest")
COMPARE=""
for c in draw page2 other_term; do
  for side in ckan ours; do
    base=$CKAN_URL; [ "$side" = ours ] && base=$OURS_URL
    code=$(curl -s -m 120 "${CURL_H[@]}" --data-binary "@$OUT/form_$c.txt" -D "$OUT/compare_$c.$side.headers" \
      -o "$OUT/compare_$c.$side.body" -w '%{http_code} %{time_total}' "$base$AJAX") || code="000 0"
    echo "$code" >"$OUT/compare_$c.$side.status"
  done
  ck=$(cut -d' ' -f1 <"$OUT/compare_$c.ckan.status"); ou=$(cut -d' ' -f1 <"$OUT/compare_$c.ours.status")
  ct_ck=$(grep -i '^content-type:' "$OUT/compare_$c.ckan.headers" | tr -d '\r' | cut -d' ' -f2-)
  ct_ou=$(grep -i '^content-type:' "$OUT/compare_$c.ours.headers" | tr -d '\r' | cut -d' ' -f2-)
  if cmp -s "$OUT/compare_$c.ckan.body" "$OUT/compare_$c.ours.body"; then same=identical; else same=DIFFERENT; fi
  [ "$ct_ck" = "$ct_ou" ] || same="$same (Content-Type differs: '$ct_ck' vs '$ct_ou')"
  if [ "${same%% *}" = DIFFERENT ]; then
    same="$same ($(python3 "$OUT/dt.py" explain "$OUT/compare_$c.ckan.body" "$OUT/compare_$c.ours.body"))"
  fi
  line="compare $c: status CKAN $ck ours $ou; body $(wc -c <"$OUT/compare_$c.ckan.body") vs $(wc -c <"$OUT/compare_$c.ours.body") bytes: $same"
  log "$line"; COMPARE+="$line"$'\n'
  [ "$ck" = 200 ] || die "CKAN answered $ck to the $c draw (see $OUT/compare_$c.ckan.body)"
done
python3 - "$OUT/compare_draw.ckan.body" >"$OUT/draw_summary.txt" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"recordsTotal={d['recordsTotal']} recordsFiltered={d['recordsFiltered']} rows={len(d['data'])}"
      f" first={d['data'][0]['DT_RowId'] if d['data'] else None}")
EOF
log "draw: $(cat "$OUT/draw_summary.txt")"

# ------------------------------------------------------------------ 5. sequential latency
SEQ_JSON=()
for v in same paging cold; do
  for try in $(seq 1 "$RETRIES"); do
    wait_idle
    m0=$(metrics); l0=$(cut -d' ' -f1-3 /proc/loadavg)
    w=$WARM; [ "$v" = cold ] && w=$WARM_COLD
    log "sequential $v: $w warm-up + $N draws, interleaved (load $l0)"
    t0=$(date +%s); phase "seq_$v" start
    s=$(python3 "$OUT/dt.py" seq "$v" "$CKAN_URL" "$OURS_URL" "$AJAX" "$COLS" "$SORT" "$LENGTH" \
        "$TERM_Q" "${COLD_TERMS#* }" "$N" "$w" "$OUT")
    t1=$(date +%s); phase "seq_$v" end
    echo "$s" >"$OUT/seq_$v.json"
    echo "before: $m0" >"$OUT/seq_$v.metrics"; echo "after:  $(metrics)" >>"$OUT/seq_$v.metrics"
    echo "load: $l0" >>"$OUT/seq_$v.metrics"
    overlapped "$t0" "$t1" || break
    [ "$try" -lt "$RETRIES" ] || { log "seq $v overlapped a compile/CI $RETRIES times: kept, flagged"; break; }
    log "seq $v overlapped a compile/CI: redoing it (outputs of this try kept as *.busy$try)"
    for f in "$OUT/seq_$v".{csv,json,metrics}; do mv "$f" "$f.busy$try"; done
    # the cold terms are in our totals cache now: a fresh server makes them cold again
    if [ "$v" = cold ]; then stop_server; start_server; fi
  done
  SEQ_JSON+=("$OUT/seq_$v.json")
done

# ------------------------------------------------------------------ 6. wrk
cat >"$OUT/result.lua" <<'EOF'
function done(summary, latency, requests)
  local sock = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.timeout
  io.write(string.format("RESULT %.2f %.2f %.2f %.2f %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status, sock))
end
EOF
{
  echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"'
  echo 'wrk.headers["X-Requested-With"] = "XMLHttpRequest"'
  echo "wrk.body = [[$(cat "$OUT/form_draw.txt")]]"
  cat "$OUT/result.lua"
} >"$OUT/same.lua"
# paging: start = 10 * (k mod PAGES), draw = k + 1, built from the page-2 form
{
  echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"'
  echo 'wrk.headers["X-Requested-With"] = "XMLHttpRequest"'
  echo "local tmpl = [[$(cat "$OUT/form_page2.txt")]]"
  echo "local pages = $PAGES"
  echo "local length = $LENGTH"
  cat <<'EOF'
local k = 0
request = function()
  k = k + 1
  local body = tmpl:gsub("^draw=%d+", "draw=" .. k, 1)
  body = body:gsub("&start=%d+&", "&start=" .. (length * (k % pages)) .. "&", 1)
  return wrk.format(nil, nil, nil, body)
end
EOF
  cat "$OUT/result.lua"
} >"$OUT/paging.lua"
grep -q '&start=10&' "$OUT/form_page2.txt" || die "page-2 form has no '&start=10&'"

WRK_RES=()
for v in same paging; do
  for side in ckan ours; do
    base=$CKAN_URL; [ "$side" = ours ] && base=$OURS_URL
    for try in $(seq 1 "$RETRIES"); do
      wait_idle
      m0=$(metrics); l0=$(cut -d' ' -f1-3 /proc/loadavg)
      log "wrk $v $side: -c$CONNS ${WRK_WARMUP}s warm-up + ${DURATION}s (load $l0)"
      wrk -t1 -c"$CONNS" -d"${WRK_WARMUP}s" --timeout "$WRK_TIMEOUT" -s "$OUT/$v.lua" "$base$AJAX" \
        >"$OUT/wrk_${v}_${side}.warmup.txt" 2>&1 || true
      t0=$(date +%s); phase "wrk_${v}_${side}" start
      wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency -s "$OUT/$v.lua" "$base$AJAX" \
        >"$OUT/wrk_${v}_${side}.txt" 2>&1 || die "wrk failed (see $OUT/wrk_${v}_${side}.txt)"
      t1=$(date +%s); phase "wrk_${v}_${side}" end
      { echo "before: $m0"; echo "after:  $(metrics)"; echo "load: $l0"; } >"$OUT/wrk_${v}_${side}.metrics"
      overlapped "$t0" "$t1" || break
      [ "$try" -lt "$RETRIES" ] || { log "wrk $v $side overlapped a compile/CI $RETRIES times: kept, flagged"; break; }
      log "wrk $v $side overlapped a compile/CI: redoing it"
      for f in "$OUT/wrk_${v}_${side}".{txt,warmup.txt,metrics}; do mv "$f" "$f.busy$try"; done
    done
    r=$(grep '^RESULT ' "$OUT/wrk_${v}_${side}.txt" | cut -d' ' -f2-)
    WRK_RES+=("$v $side $r")
    log "  -> req/s p50 p90 p99 n non2xx sockerr: $r"
  done
done
printf '%s\n' "${WRK_RES[@]}" >"$OUT/wrk_results.txt"

# ------------------------------------------------------------------ 7. summary
python3 - "$OUT" "$CONNS" "$DURATION" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
out, conns, dur = sys.argv[1:4]
busy = [int(x) for x in open(f"{out}/busy.log").read().split()]
span = {}
for line in open(f"{out}/phases.log"):
    name, what, t = line.split()
    span.setdefault(name, {})[what] = int(t)
def flag(name):
    s = span.get(name, {})
    hit = [t for t in busy if s.get("start", 0) - 2 <= t <= s.get("end", 0)]
    return f" BUSY(rustc/CI seen {len(hit)}x)" if hit else ""
print(f"DataTables draw benchmark — {out}")
print(open(f"{out}/command.txt").read().strip())
print("draw (CKAN): " + open(f"{out}/draw_summary.txt").read().strip())
print()
print("Sequential latency (ms, interleaved CKAN/ours, one connection per request)")
print(f"{'variant':8} {'n':>3} | {'CKAN p50':>9} {'p90':>8} {'mean':>8} | {'ours p50':>9} {'p90':>8} {'mean':>8} | {'CKAN/ours p50':>13} {'p90':>6} | bodies same | totals cache (ours)")
for v in ("same", "paging", "cold"):
    s = json.load(open(f"{out}/seq_{v}.json"))
    c, o = s["ckan"], s["ours"]
    met = open(f"{out}/seq_{v}.metrics").read().splitlines()
    def hm(line):
        return dict(kv.split("=") for kv in line.split(":", 1)[1].split())
    b, a = hm(met[0]), hm(met[1])
    d = " ".join(f"{k}+{int(float(a[k]) - float(b[k]))}" for k in a)
    print(f"{v:8} {s['n']:>3} | {c['p50']:9.1f} {c['p90']:8.1f} {c['mean']:8.1f} | {o['p50']:9.1f} {o['p90']:8.1f} {o['mean']:8.1f} |"
          f" {c['p50']/o['p50']:12.1f}x {c['p90']/o['p90']:5.1f}x | {s['n']-s['mismatches']}/{s['n']}"
          f"{'' if not s['non200'] else ' non200=' + str(s['non200'])} | {d}  [{met[2]}]{flag('seq_' + v)}")
print()
print(f"Throughput (wrk -t1 -c{conns}, {dur} s)")
print(f"{'variant':8} {'side':5} | {'req/s':>8} {'p50':>8} {'p90':>8} {'p99':>8} | {'n':>6} non2xx sockerr")
res = {}
for line in open(f"{out}/wrk_results.txt"):
    v, side, rps, p50, p90, p99, n, st, se = line.split()
    res[(v, side)] = (float(rps), float(p50), float(p90), float(p99))
    print(f"{v:8} {side:5} | {float(rps):8.2f} {float(p50):8.1f} {float(p90):8.1f} {float(p99):8.1f} | {int(n):>6} {st:>6} {se:>7}{flag(f'wrk_{v}_{side}')}")
for v in ("same", "paging"):
    c, o = res[(v, "ckan")], res[(v, "ours")]
    r = lambda x, y: f"{x / y:.1f}x" if y else "n/a"  # noqa: E731
    print(f"{v:8} ours/CKAN req/s {r(o[0], c[0])}; CKAN/ours p50 {r(c[1], o[1])}, p99 {r(c[3], o[3])}")
print()
print("Byte comparison of whole bodies:")
EOF
printf '%s' "$COMPARE" | tee -a "$OUT/summary.txt"
for v in same paging cold; do
  echo "totals cache seq_$v: $(tr '\n' ' ' <"$OUT/seq_$v.metrics")" >>"$OUT/summary.txt"
done
for f in "$OUT"/wrk_*_ours.metrics; do echo "$(basename "$f"): $(tr '\n' ' ' <"$f")" >>"$OUT/summary.txt"; done
log "done: $OUT/summary.txt"
