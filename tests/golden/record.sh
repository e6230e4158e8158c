#!/usr/bin/env bash
# Records golden responses from a CKAN 2.12 DataStore (the oracle) or from any
# server that should behave the same (e.g. the Rust re-implementation).
#
# usage: TOKEN=<sysadmin api token> record.sh [BASE] [OUTDIR] [CASES]
#   defaults: http://127.0.0.1:5000  <this dir>/extra  <this dir>/cases.tsv
#
# 1. Makes sure both tables exist (needs TOKEN only if one is missing):
#      11111111-1111-4111-8111-111111111111  from samples/datastore_create.json
#        (dataset oracle-sample, as the oracle's up.sh makes it)
#      44444444-4444-4444-8444-444444444444  the "ugly" table, alias ugly-alias,
#        from ../fixtures/tables/44444444-4444-4444-8444-444444444444.create.json
#        (dataset oracle-golden in organization oracle, created on demand)
#    Tables are created through the real API (organization_create /
#    package_create / resource_create / datastore_create), never by SQL.
# 2. Replays every line of CASES (tab separated):
#      NAME <TAB> METHOD <TAB> PATH <TAB> BODY [<TAB> CONTENT-TYPE]
#    @U@ / @S@ in PATH and BODY are replaced by the ugly / samples resource id.
#    POST without CONTENT-TYPE sends `Content-Type: application/json`.
#    Lines starting with # and blank lines are skipped.
#    For each case writes OUTDIR/NAME.request ("METHOD\tPATH\tBODY" plus
#    "\tCONTENT-TYPE" when it is not application/json, newline-terminated,
#    placeholders expanded), OUTDIR/NAME.<ext> (raw body; ext from the response
#    Content-Type: json, js (JSONP), html, txt, bin), OUTDIR/NAME.meta
#    (status/content_type/time_total) and OUTDIR/NAME.headers (raw headers).
#    Requests are anonymous: no Authorization header is ever sent for cases.
# Idempotent: re-running overwrites the recordings, tables are only created
# when missing.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${1:-http://127.0.0.1:5000}
OUT=${2:-$HERE/extra}
CASES=${3:-$HERE/cases.tsv}
U=44444444-4444-4444-8444-444444444444
S=11111111-1111-4111-8111-111111111111
A="$BASE/api/3/action"
mkdir -p "$OUT"

# ----------------------------------------------------------- table creation
# api ACTION JSON-or-@file : authenticated POST, prints the body
api() {
  curl -s -H "Authorization: ${TOKEN:-}" -H 'Content-Type: application/json' \
    -X POST "$A/$1" --data-binary "$2"
}
exists() {  # exists ACTION ID -> 0 when the action answers 200
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: ${TOKEN:-}" \
       -H 'Content-Type: application/json' -X POST "$A/$1" \
       --data-binary "{\"id\": \"$2\"}")" = 200 ]
}
ensure_table() {  # ensure_table RESOURCE_ID DATASET RESOURCE_NAME CREATE_JSON_FILE
  local rid=$1 ds=$2 name=$3 file=$4
  exists datastore_info "$rid" && return 0
  if [ -z "${TOKEN:-}" ]; then
    echo "table $rid is missing and TOKEN is not set" >&2; exit 1
  fi
  exists organization_show oracle || api organization_create '{"name": "oracle", "title": "oracle"}' >/dev/null
  exists package_show "$ds" || api package_create "{\"name\": \"$ds\", \"title\": \"$ds\", \"owner_org\": \"oracle\"}" >/dev/null
  exists resource_show "$rid" || api resource_create "{\"package_id\": \"$ds\", \"id\": \"$rid\", \"name\": \"$name\", \"url\": \"http://example.invalid/$name.csv\", \"format\": \"CSV\"}" >/dev/null
  local res
  res=$(api datastore_create "@$file")
  case "$res" in
    *'"success": true'*) echo "created table $rid" >&2 ;;
    *) echo "datastore_create $rid failed: ${res:0:2000}" >&2; exit 1 ;;
  esac
}
ensure_table "$S" oracle-sample sample "$HERE/samples/datastore_create.json"
ensure_table "$U" oracle-golden ugly "$HERE/../fixtures/tables/$U.create.json"

# ---------------------------------------------------------------- recording
n=0
# (tabs -> \037 first: a tab is IFS whitespace, so empty fields would collapse)
while IFS=$'\037' read -r name method path body ctype; do
  case "$name" in ''|'#'*) continue ;; esac
  path=${path//@U@/$U}; path=${path//@S@/$S}
  body=${body//@U@/$U}; body=${body//@S@/$S}
  args=(-s -g -o "$OUT/$name.body" -D "$OUT/$name.headers"
        -w 'status=%{http_code}\ncontent_type=%{content_type}\ntime_total=%{time_total}\n')
  if [ "$method" = POST ]; then
    [ -n "${ctype:-}" ] || ctype=application/json
    args+=(-X POST -H "Content-Type: $ctype" --data-binary "$body")
  else
    args+=(-X "$method")
  fi
  curl "${args[@]}" "$BASE$path" > "$OUT/$name.meta"
  if [ "$method" = POST ] && [ "$ctype" != application/json ]; then
    printf '%s\t%s\t%s\t%s\n' "$method" "$path" "$body" "$ctype" > "$OUT/$name.request"
  else
    printf '%s\t%s\t%s\n' "$method" "$path" "$body" > "$OUT/$name.request"
  fi
  ct=$(sed -n 's/^content_type=//p' "$OUT/$name.meta")
  case "$ct" in
    application/json*) ext=json ;;
    application/javascript*) ext=js ;;
    text/html*) ext=html ;;
    text/*) ext=txt ;;
    *) ext=bin ;;
  esac
  rm -f "$OUT/$name".{json,js,html,txt,bin}
  mv "$OUT/$name.body" "$OUT/$name.$ext"
  n=$((n + 1))
done < <(tr '\t' '\037' < "$CASES")
echo "recorded $n responses into $OUT" >&2
