#!/usr/bin/env bash
# Records golden responses of `GET /datastore/dump/<id>` from a CKAN 2.12 DataStore
# (the oracle) or from any server that should behave the same (the Rust server).
#
# usage: record_dumps.sh [BASE] [OUTDIR]
#   defaults: http://127.0.0.1:5000  <this dir>/dumps
#
# Both tables must already exist (record.sh creates them):
#   44444444-4444-4444-8444-444444444444  the "ugly" table, alias ugly-alias
#   11111111-1111-4111-8111-111111111111  the samples table
#
# Same file format as record.sh, per case NAME:
#   NAME.request  "METHOD<TAB>PATH<TAB>BODY\n" (BODY always empty; PATH exactly as sent,
#                 query values percent-encoded)
#   NAME.<ext>    raw body; ext = csv/tsv/json/xml from the `format` query parameter
#                 (default csv) when the response is application/octet-stream, html for
#                 text/html error pages, json/txt/bin otherwise; with Content-Encoding
#                 gzip ".gz" is appended (body saved as received, not decompressed)
#   NAME.meta     status= / content_type= / time_total=
#   NAME.headers  raw response headers
#   NAME.request_headers  only for cases that send an extra request header (one per line)
# Requests are anonymous (no Authorization header). Idempotent.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${1:-http://127.0.0.1:5000}
OUT=${2:-$HERE/dumps}
U=44444444-4444-4444-8444-444444444444
S=11111111-1111-4111-8111-111111111111
NOPE=00000000-0000-4000-8000-000000000000
mkdir -p "$OUT"

# percent-encode one query value (everything except unreserved characters)
enc() {
  local LC_ALL=C s=$1 i c out=
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

n=0
# record NAME METHOD PATH FORMAT [extra request header]
record() {
  local name=$1 method=$2 path=$3 fmt=$4 hdr=${5:-}
  local args=(-s -g -o "$OUT/$name.body" -D "$OUT/$name.headers"
              -w 'status=%{http_code}\ncontent_type=%{content_type}\ntime_total=%{time_total}\n')
  case "$method" in
    HEAD) args+=(--head) ;;
    GET) ;;
    *) args+=(-X "$method") ;;
  esac
  rm -f "$OUT/$name".{csv,tsv,json,xml,html,txt,bin,gz,request_headers} "$OUT/$name".*.gz
  if [ -n "$hdr" ]; then
    args+=(-H "$hdr")
    printf '%s\n' "$hdr" > "$OUT/$name.request_headers"
  fi
  curl "${args[@]}" "$BASE$path" > "$OUT/$name.meta"
  [ "$method" = HEAD ] && : > "$OUT/$name.body"   # --head writes nothing useful to -o
  printf '%s\t%s\t\n' "$method" "$path" > "$OUT/$name.request"
  local ct ext
  ct=$(sed -n 's/^content_type=//p' "$OUT/$name.meta")
  case "$ct" in
    application/octet-stream*) ext=$fmt ;;
    text/html*) ext=html ;;
    application/json*) ext=json ;;
    text/*) ext=txt ;;
    *) ext=bin ;;
  esac
  if grep -qi '^content-encoding: *gzip' "$OUT/$name.headers"; then ext=$ext.gz; fi
  mv "$OUT/$name.body" "$OUT/$name.$ext"
  n=$((n + 1))
}

# c NAME ID [key=value ...] : GET /datastore/dump/ID?key=value&... (values encoded)
c() {
  local name=$1 id=$2 fmt=csv q= kv k v; shift 2
  for kv in "$@"; do
    k=${kv%%=*}; v=${kv#*=}
    [ "$k" = format ] && [ -n "$v" ] && fmt=$v
    q+="${q:+&}$k=$(enc "$v")"
  done
  record "$name" GET "/datastore/dump/$id${q:+?$q}" "$fmt"
}

# ------------------------------------------------------------ default / formats
c u_default      $U
c s_default      $S
for f in csv tsv json xml; do
  c u_$f         $U format=$f
  c s_$f         $S format=$f
  c u_${f}_bom   $U format=$f bom=true
done
c s_csv_bom      $S bom=true
c u_csv_bom_false $U bom=false
c u_csv_bom_1    $U bom=1
c u_csv_bom_True $U bom=True

# ------------------------------------------------------------ alias / unknown
c alias_csv      ugly-alias
c alias_json     ugly-alias format=json
c alias_xml_q    ugly-alias format=xml q=apples
c err_unknown_resource $NOPE
c err_unknown_alias    nosuch-alias
c err_unknown_resource_json $NOPE format=json

# ------------------------------------------------------------ q / plain / language
c u_q_csv        $U q=apples
c u_q_tsv        $U format=tsv q=apples
c u_q_xml        $U format=xml q=apples
c u_q_json       $U format=json q=apples                    # CKAN: 500
c u_q_json_fields $U format=json q=apples 'fields=id,Full Name,description'
c u_q_csv_fields $U q=apples 'fields=id,description'
c u_q_csv_sort   $U q=apples 'sort=id desc'
c u_q_bom_limit  $U q=oranges bom=true limit=2 'sort=id'
c u_q_nomatch_csv  $U q=zzzznomatch
c u_q_nomatch_xml  $U format=xml q=zzzznomatch
c u_q_nomatch_json_fields $U format=json q=zzzznomatch fields=id
c u_q_prefix_plain $U q=appl                                  # word match only
c u_q_plain_false  $U q='appl:*' plain=false
c u_q_plain_false_or $U q='cherry | kiwi' plain=false 'sort=id'
c u_q_plain_false_json_fields $U format=json q='appl:* & !paris' plain=false fields=id,description
c u_q_the_english  $U q=the
c u_q_the_simple   $U q=the language=simple
c u_q_stem_simple  $U q=appl language=simple             # _full_text is english: matches stems
c u_q_word_simple  $U q=apples language=simple           # ... so the plain word finds nothing
c u_q_simple_xml   $U format=xml q=the language=simple 'fields=_id,id'
c u_q_dict         $U 'q={"description":"apples"}'
c u_q_dict_fullname $U 'q={"Full Name":"alice"}'
c u_q_unicode      $U 'q=café'
c s_q_csv          $S q=cherry
c s_q_tsv          $S format=tsv q=cherry
c s_q_xml          $S format=xml q=cherry
c s_q_json         $S format=json q=cherry                    # CKAN: 500
c s_q_json_fields  $S format=json q=cherry fields=id,name

# ------------------------------------------------------------ filters
c u_filter_fullname      $U 'filters={"Full Name":"Alice Smith"}'
c u_filter_fullname_json $U format=json 'filters={"Full Name":"Alice Smith"}'
c u_filter_fullname_quote $U 'filters={"Full Name":"Zoë \"Zed\" Müller"}'
c u_filter_flag_true     $U format=tsv 'filters={"flag":true}'
c u_filter_qty_int       $U format=json 'filters={"qty":7}'
c u_filter_qty_str       $U 'filters={"qty":"7"}'
c u_filter_id_list       $U format=xml 'filters={"id":[10,20,30]}'
c u_filter_day           $U 'filters={"day":"2024-01-01"}'
c u_filter_price         $U format=json 'filters={"price":"2.50"}'
c u_filter_ab            $U 'filters={"a,b":"x,y"}'
c u_filter_upper_list    $U 'filters={"UPPER":["A","b"]}'
c u_filter_multi         $U format=xml 'filters={"flag":false,"qty":[4,5,6]}'
c u_filter__id           $U 'filters={"_id":3}'              # csv: 2nd page keyset overrides _id
c u_filter__id_tsv       $U format=tsv 'filters={"_id":3}'
c u_filter__id_json      $U format=json 'filters={"_id":3}'
c u_filter__id_xml       $U format=xml 'filters={"_id":3}'
c u_filter__id_limit1    $U limit=1 'filters={"_id":3}'
c u_filter__id_sort      $U 'filters={"_id":3}' 'sort=id'     # offset paging: no override
c u_filter__id_list      $U 'filters={"_id":[3,5]}'          # list + keyset
c u_filter__id_gt        $U 'filters={"_id":{"gt":25}}'
c u_filter_nomatch       $U 'filters={"id":-12345}'
c u_filter_nomatch_json  $U format=json 'filters={"id":-12345}'
c u_filter_q             $U 'filters={"flag":true}' q=apples
c s_filter_category      $S format=json 'filters={"category":"fruit"}'
c s_filter_active_id     $S 'filters={"active":true}' 'sort=id desc' limit=3

# ------------------------------------------------------------ fields
c u_fields_space         $U 'fields=Full Name,id'
c u_fields_space_xml     $U format=xml 'fields=Full Name,UPPER,id'
c u_fields_space_json    $U format=json 'fields=Full Name,id'
c u_fields_id_not_first_csv  $U 'fields=id,_id,price'
c u_fields_id_not_first_xml  $U format=xml 'fields=id,_id,price'
c u_fields_id_not_first_json $U format=json 'fields=id,_id,price'
c u_fields_id_first_xml  $U format=xml 'fields=_id,price'
c u_fields_no_id_xml     $U format=xml 'fields=id,weird'
c u_fields_ab            $U 'fields=id,a,b'                 # "a,b" cannot be named
c u_fields_ab_quoted     $U 'fields=id,"a,b"'
c u_fields_json_cols_xml $U format=xml 'fields=_id,meta,tags,nums'
c u_fields_json_cols_json $U format=json 'fields=_id,meta,tags,nums'
c u_fields_json_cols_tsv $U format=tsv 'fields=_id,meta,tags,nums'
c u_fields_numbers_json  $U format=json 'fields=id,price,score,big,qty'
c u_fields_numbers_xml   $U format=xml 'fields=id,price,score,big,qty,flag'
c u_fields_times         $U format=json 'fields=day,at_time,created'
c u_fields_times_xml     $U format=xml 'fields=day,at_time,created'
c u_fields_weird_tsv     $U format=tsv 'fields=_id,weird,Full Name'
c u_fields_weird_xml     $U format=xml 'fields=_id,weird,Full Name'
c u_fields_dup           $U 'fields=id,id'
c s_fields               $S 'fields=name,price'
c err_fields_nosuch      $U fields=nosuch
c err_fields_nosuch_json $U format=json fields=id,nosuch

# ------------------------------------------------------------ sort
c u_sort_id_desc         $U 'sort=id desc'
c u_sort_id_asc_tsv      $U format=tsv 'sort=id asc'
c u_sort_price_desc      $U 'sort=price desc'
c u_sort_price_asc_nf    $U 'sort=price asc nulls first'
c u_sort_price_desc_nl   $U format=json 'sort=price desc nulls last'
c u_sort_score_desc_json $U format=json 'sort=score desc'
c u_sort_qty_desc_nl     $U format=xml 'sort=qty desc nulls last'
c u_sort_fullname        $U 'sort="Full Name"'
c u_sort_fullname_desc_nl $U 'sort="Full Name" desc nulls last'
c u_sort_fullname_asc_nf $U format=json 'sort="Full Name" asc nulls first'
c u_sort_fullname_unquoted $U 'sort=Full Name'
c u_sort_upper_multi     $U 'sort=UPPER asc, id desc'
c u_sort_created_xml     $U format=xml 'sort=created asc'
c u_sort_day_desc        $U 'sort=day desc nulls first'
c u_sort_ab              $U 'sort="a,b" desc'
c s_sort_price_desc      $S 'sort=price desc'
c err_sort_nosuch        $U sort=nosuch
c err_sort_bad_dir       $U 'sort=id sideways'

# ------------------------------------------------------------ offset / limit
c u_offset5              $U offset=5
c u_offset5_json         $U format=json offset=5
c u_offset5_xml          $U format=xml offset=5
c u_offset_past_end      $U offset=1000
c u_offset_past_end_json $U format=json offset=1000
c u_limit3               $U limit=3
c u_limit3_tsv           $U format=tsv limit=3
c u_limit3_json          $U format=json limit=3
c u_limit3_xml           $U format=xml limit=3
c u_limit_big            $U limit=100000
for f in csv tsv json xml; do
  c u_limit0_$f          $U format=$f limit=0
done
c u_limit0_csv_bom       $U limit=0 bom=true
c u_limit0_json_bom      $U format=json limit=0 bom=true
c s_limit0_json          $S format=json limit=0
c u_off_lim_sort_csv     $U offset=2 limit=3 'sort=price desc'
c u_off_lim_sort_json    $U format=json offset=2 limit=3 'sort=price desc'
c u_off_lim_sort_xml     $U format=xml offset=2 limit=3 'sort=price desc'
c u_off_lim_sort_tsv     $U format=tsv offset=2 limit=3 'sort="Full Name" desc'
c u_off_lim_filter_q     $U offset=1 limit=2 'filters={"flag":true}' 'sort=id'
c s_off_lim_sort_bom     $S offset=3 limit=4 'sort=id desc' bom=true
c err_limit_neg          $U limit=-1
c err_offset_neg         $U offset=-1
c err_limit_abc          $U limit=abc
c err_offset_abc         $U offset=abc
c err_limit_offset_abc   $U limit=abc offset=abc
c err_filters_notjson    $U filters=notjson
c err_filters_list       $U 'filters=[1,2]'
c err_filters_nosuch     $U 'filters={"nosuch":1}'
c u_bom_abc              $U bom=abc                     # no error, no BOM

# ------------------------------------------------------------ distinct
c u_distinct_sort        $U distinct=true fields=UPPER sort=UPPER
c u_distinct_sort_tsv    $U format=tsv distinct=true fields=flag 'sort=flag desc'
c u_distinct_sort_xml    $U format=xml distinct=true 'fields=UPPER' sort=UPPER
c u_distinct_two_fields  $U distinct=true fields=qty,flag 'sort=qty,flag'
c u_distinct_nosort      $U distinct=true fields=UPPER      # CKAN: 500
c u_distinct_json        $U format=json distinct=true fields=UPPER sort=UPPER  # 500
c u_distinct_json_col    $U distinct=true fields=_id,meta sort=_id            # 500 (json)
c s_distinct_sort        $S distinct=true fields=category sort=category
c s_distinct_nosort      $S distinct=true fields=category

# ------------------------------------------------------------ format errors
c err_format_xls         $U format=xls
c err_format_upper       $U format=CSV
c u_format_empty         $U format=                     # empty = default csv

# ------------------------------------------------------------ method / headers
record head_csv     HEAD "/datastore/dump/$U" csv
record head_json    HEAD "/datastore/dump/$U?format=json" json
record gzip_csv     GET  "/datastore/dump/$U" csv 'Accept-Encoding: gzip'
record gzip_json    GET  "/datastore/dump/$U?format=json" json 'Accept-Encoding: gzip'
record trailing_slash GET "/datastore/dump/$U/" csv
record post_dump    POST "/datastore/dump/$U" csv

echo "recorded $n responses into $OUT" >&2
