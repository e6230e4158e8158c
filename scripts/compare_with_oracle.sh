#!/usr/bin/env bash
# Replays the oracle's sample requests (../shared/oracle/samples.sh) against CKAN and against
# our server, and diffs every search_* / info response (bodies with the `help` host and
# datastore_info's ever-changing db_size normalised; status and Content-Type from .meta).
#
# usage: scripts/compare_with_oracle.sh [OURS_BASE] [CKAN_BASE] [SAMPLES_SH]
#   defaults: http://127.0.0.1:8801  http://127.0.0.1:5000  ../shared/oracle/samples.sh
# Our server must read the oracle's datastore database, e.g.
#   ckan-datastore serve --all-tables-public --listen 127.0.0.1:8801 \
#     --read-url postgresql://datastore_default:datastore_default@127.0.0.1:5432/datastore_default
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OURS=${1:-http://127.0.0.1:8801}
CKAN=${2:-http://127.0.0.1:5000}
SAMPLES=${3:-$HERE/../../shared/oracle/samples.sh}
OUT=$(mktemp -d)
bash "$SAMPLES" "$CKAN" "$OUT/ckan" >/dev/null
bash "$SAMPLES" "$OURS" "$OUT/ours" >/dev/null
norm() { sed -E 's#"help": "https?://[^/"]*#"help": "HOST#; s#"db_size": [0-9]+#"db_size": N#' "$1"; }
pass=0; fail=0
for f in "$OUT"/ckan/search_*.json "$OUT"/ckan/info.json; do
  name=$(basename "$f" .json)
  case $name in search_sql*) continue ;; esac
  ok=1
  if ! diff -q <(norm "$f") <(norm "$OUT/ours/$name.json") >/dev/null; then ok=0; fi
  if ! diff -q <(grep -E '^(status|content_type)=' "$OUT/ckan/$name.meta") \
               <(grep -E '^(status|content_type)=' "$OUT/ours/$name.meta") >/dev/null; then ok=0; fi
  if [ $ok = 1 ]; then pass=$((pass+1)); else
    fail=$((fail+1)); echo "DIFF $name"
    diff <(norm "$f"; cat "$OUT/ckan/$name.meta") <(norm "$OUT/ours/$name.json"; cat "$OUT/ours/$name.meta") | head -5
  fi
done
echo "$pass passed, $fail failed"
rm -rf "$OUT"
[ $fail = 0 ]
