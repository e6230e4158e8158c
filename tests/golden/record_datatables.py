#!/usr/bin/env python3
"""Records golden responses of CKAN 2.12's DataTables view endpoints
(`POST /datatables/ajax/<view_id>` and `POST /datatables/filtered-download/<view_id>`,
from the `datatables_view` plugin) from the oracle, or from any server that should
behave the same (e.g. the Rust re-implementation).

usage: TOKEN=<sysadmin api token> record_datatables.py [BASE] [OUTDIR]
  defaults: http://127.0.0.1:5000  <this dir>/datatables
  --no-setup   skip step 1 (use against a server that has no CKAN action API
               for views, e.g. ours reading the oracle's databases)
  --only PREFIX  record only the cases whose name starts with PREFIX

1. Setup (through the real action API, sysadmin TOKEN needed only when something is
   missing or differs). Needs the two golden tables (run record.sh first if they are
   missing: 11111111-... in dataset oracle-sample, 44444444-... in oracle-golden).
   Creates, with FIXED ids so that re-recording on a rebuilt oracle gives the same paths:
     dataset oracle-dt-private (private=true, org oracle), resource
       77777777-7777-4777-8777-777777777777 with a 3-row DataStore table
     views (resource_view_create, view_type datatables_view), see VIEWS below:
       d7000000-0000-4000-8000-000000000001  samples table, default config
       d7000000-0000-4000-8000-000000000002  ugly table: show_fields subset, view filter
                                             flag=true, responsive, ellipsis 20, date NONE
       d7000000-0000-4000-8000-000000000003  ugly table, default config (all columns)
       d7000000-0000-4000-8000-000000000004  ugly table, show_fields WITHOUT _id (quirk)
       d7000000-0000-4000-8000-000000000005  private table, default config
       d7000000-0000-4000-8000-000000000006  resource 77777777-...-777777777778 (public
                                             dataset oracle-dt-nods) that has NO table
       d7000000-0000-4000-8000-000000000007  resource 77777777-...-777777777779 (same
                                             dataset) made with a table, then resource_delete'd
       d7000000-0000-4000-8000-000000000008  samples table, view filter on a column that
                                             does not exist (nope=x)
   A view that exists with another config is deleted and re-created.
2. Replays CASES. For each NAME writes into OUTDIR:
     NAME.request  "METHOD\tPATH\tBODY\tCONTENT-TYPE\n" (the 4th field only for a POST;
                   GET lines are "GET\tPATH\t\n"), as tests/golden/record.sh does for
                   non-JSON POSTs. BODY is exactly the bytes sent.
     NAME.<ext>    raw response body. ext = json when the body parses as JSON (the ajax
                   endpoint answers JSON with Content-Type text/html!), otherwise from the
                   Content-Type as record.sh does: html, txt, js, bin; csv/tsv/xml dumps
                   are .bin (application/octet-stream)
     NAME.meta     status=, content_type=, time_total= (curl -w), plus location= when the
                   response has a Location header
     NAME.headers  raw response headers (curl -D)
   Requests are anonymous (no Authorization header, no cookie, no CSRF token) except the
   cases listed in AUTH_CASES, which are sent with "Authorization: $TOKEN" (sysadmin).
   Redirects are not followed. Also writes OUTDIR/cases.tsv (NAME METHOD PATH BODY CTYPE,
   tab separated; `record.sh BASE OUT OUTDIR/cases.tsv` can replay it, but then the
   bodies get record.sh's extensions).
Idempotent.
"""
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
args = [a for a in sys.argv[1:]]
NO_SETUP = "--no-setup" in args
ONLY = None
if "--only" in args:
    i = args.index("--only")
    ONLY = args[i + 1]
    del args[i:i + 2]
args = [a for a in args if a != "--no-setup"]
BASE = args[0] if len(args) > 0 else "http://127.0.0.1:5000"
OUT = args[1] if len(args) > 1 else os.path.join(HERE, "datatables")
TOKEN = os.environ.get("TOKEN", "")

S = "11111111-1111-4111-8111-111111111111"
U = "44444444-4444-4444-8444-444444444444"
P = "77777777-7777-4777-8777-777777777777"
N = "77777777-7777-4777-8777-777777777778"  # public resource WITHOUT a DataStore table
D = "77777777-7777-4777-8777-777777777779"  # public resource, had a table, then deleted
V_S = "d7000000-0000-4000-8000-000000000001"
V_U = "d7000000-0000-4000-8000-000000000002"
V_UA = "d7000000-0000-4000-8000-000000000003"
V_UN = "d7000000-0000-4000-8000-000000000004"
V_P = "d7000000-0000-4000-8000-000000000005"
V_N = "d7000000-0000-4000-8000-000000000006"
V_D = "d7000000-0000-4000-8000-000000000007"
V_BF = "d7000000-0000-4000-8000-000000000008"

S_COLS = ["id", "name", "category", "price", "created", "active", "meta"]
U_ALL = ["id", "Full Name", "UPPER", "a,b", "description", "weird", "day", "at_time",
         "created", "price", "score", "big", "qty", "flag", "meta", "tags", "nums"]
U_SHOW = ["_id", "id", "Full Name", "UPPER", "a,b", "weird", "day", "created", "price",
          "score", "big", "flag", "meta", "tags"]
UN_SHOW = ["id", "Full Name", "price", "flag"]
P_COLS = ["id", "secret"]

VIEWS = {
    V_S: {"resource_id": S, "title": "Table"},
    V_U: {"resource_id": U, "title": "Ugly subset (flag=true)",
          "description": "show_fields subset + view filter flag=true",
          "show_fields": U_SHOW, "filter_fields": ["flag"], "filter_values": ["true"],
          "responsive": True, "ellipsis_length": 20, "date_format": "NONE"},
    V_UA: {"resource_id": U, "title": "Ugly all columns"},
    V_UN: {"resource_id": U, "title": "Ugly without _id",
           "show_fields": UN_SHOW},
    V_P: {"resource_id": P, "title": "Private table"},
    V_N: {"resource_id": N, "title": "No DataStore table"},
    V_BF: {"resource_id": S, "title": "Filter on a missing column",
           "filter_fields": ["nope"], "filter_values": ["x"]},
}


# ------------------------------------------------------------------ API helpers
def api(action, body, token=True):
    req = urllib.request.Request(
        f"{BASE}/api/3/action/{action}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 **({"Authorization": TOKEN} if token and TOKEN else {})})
    try:
        return json.loads(urllib.request.urlopen(req).read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def need_token():
    if not TOKEN:
        sys.exit("setup needs to create something: set TOKEN (sysadmin API token)")


def must(res, what):
    if not res.get("success"):
        sys.exit(f"{what} failed: {json.dumps(res)[:2000]}")
    return res["result"]


def setup():
    for rid in (S, U):
        if not api("datastore_info", {"id": rid}).get("success"):
            sys.exit(f"table {rid} missing: run tests/golden/record.sh first")
    if not TOKEN:
        # the private dataset/view cannot be checked anonymously: assume they exist
        print("no TOKEN: checking public views only", file=sys.stderr)
    # private dataset + table
    if TOKEN and not api("datastore_info", {"id": P}).get("success"):
        need_token()
        if not api("organization_show", {"id": "oracle"}).get("success"):
            must(api("organization_create", {"name": "oracle", "title": "oracle"}), "org")
        if not api("package_show", {"id": "oracle-dt-private"}).get("success"):
            must(api("package_create", {"name": "oracle-dt-private", "title": "oracle-dt-private",
                                        "owner_org": "oracle", "private": True}), "package_create")
        if not api("resource_show", {"id": P}).get("success"):
            must(api("resource_create", {"package_id": "oracle-dt-private", "id": P,
                                         "name": "private", "format": "CSV",
                                         "url": "http://example.invalid/private.csv"}),
                 "resource_create")
        must(api("datastore_create", {
            "resource_id": P, "force": True,
            "fields": [{"id": "id", "type": "int4"}, {"id": "secret", "type": "text"}],
            "records": [{"id": 1, "secret": "alpha"}, {"id": 2, "secret": "bravo <b>"},
                        {"id": 3, "secret": None}]}), "datastore_create private")
    # public dataset with a resource that has no DataStore table
    if not api("resource_show", {"id": N}).get("success"):
        need_token()
        if not api("package_show", {"id": "oracle-dt-nods"}).get("success"):
            must(api("package_create", {"name": "oracle-dt-nods", "title": "oracle-dt-nods",
                                        "owner_org": "oracle"}), "package_create nods")
        must(api("resource_create", {"package_id": "oracle-dt-nods", "id": N, "name": "nods",
                                     "format": "CSV", "url": "http://example.invalid/nods.csv"}),
             "resource_create nods")
    # a resource with a table and a view, then resource_delete'd (CKAN drops the table;
    # the resource row stays with state=deleted, the view row stays)
    if TOKEN and not api("resource_view_show", {"id": V_D}).get("success"):
        api("resource_create", {"package_id": "oracle-dt-nods", "id": D, "name": "deleted",
                                "format": "CSV", "url": "http://example.invalid/deleted.csv"})
        must(api("datastore_create", {"resource_id": D, "force": True,
                                      "fields": [{"id": "x", "type": "text"}],
                                      "records": [{"x": "gone"}]}), "datastore_create deleted")
        must(api("resource_view_create", {"id": V_D, "resource_id": D, "title": "Deleted",
                                          "view_type": "datatables_view"}), "view deleted")
        must(api("resource_delete", {"id": D}), "resource_delete")
        print(f"created view {V_D} and deleted resource {D}", file=sys.stderr)
    for vid, cfg in VIEWS.items():
        if not TOKEN and vid == V_P:
            continue
        want = dict(cfg, id=vid, view_type="datatables_view")
        cur = api("resource_view_show", {"id": vid})
        if cur.get("success"):
            r = cur["result"]
            same = all(r.get(k) == v for k, v in want.items())
            if same:
                continue
            need_token()
            must(api("resource_view_delete", {"id": vid}), "resource_view_delete")
        need_token()
        must(api("resource_view_create", want), f"resource_view_create {vid}")
        print(f"created view {vid}", file=sys.stderr)


# ------------------------------------------------------- request construction
FORM = "application/x-www-form-urlencoded"


def enc(v):
    """jQuery.param's encoding: encodeURIComponent, then %20 -> '+'."""
    if v is True:
        v = "true"
    elif v is False:
        v = "false"
    return quote(str(v), safe="-_.!~*'()").replace("%20", "+")


def form(pairs):
    return "&".join(enc(k) + "=" + enc(v) for k, v in pairs)


def dt_pairs(cols, draw=1, start=0, length=20, search="", order=((0, "asc"),),
             colsearch=None, filters="", with_id=True):
    """The (key, value) pairs DataTables 1.12.1 (server-side mode) POSTs, in order, as
    CKAN's datatablesview.js configures it: column 0 is _id (name '', searchable
    false), then one column per data-dictionary field (name = data = field id), and the
    ajax.data hook adds `filters` (the view page's ?filters=, usually '')."""
    colsearch = colsearch or {}
    allcols = ([("_id", "", False)] if with_id else []) + [(c, c, True) for c in cols]
    p = [("draw", draw)]
    for i, (data, name, searchable) in enumerate(allcols):
        p += [(f"columns[{i}][data]", data), (f"columns[{i}][name]", name),
              (f"columns[{i}][searchable]", searchable), (f"columns[{i}][orderable]", True),
              (f"columns[{i}][search][value]", colsearch.get(i, "")),
              (f"columns[{i}][search][regex]", False)]
    for i, (c, d) in enumerate(order):
        p += [(f"order[{i}][column]", c), (f"order[{i}][dir]", d)]
    p += [("start", start), ("length", length), ("search[value]", search),
          ("search[regex]", False), ("filters", filters)]
    return p


def dt_params_json(cols, search="", order=((0, "asc"),), colsearch=None, filters="",
                   visible=None, start=0, length=20, draw=1):
    """JSON.stringify(datatable.ajax.params()) + .visible, as run_query() posts it."""
    colsearch = colsearch or {}
    allcols = [("_id", "", False)] + [(c, c, True) for c in cols]
    d = {"draw": draw,
         "columns": [{"data": data, "name": name, "searchable": sb, "orderable": True,
                      "search": {"value": colsearch.get(i, ""), "regex": False}}
                     for i, (data, name, sb) in enumerate(allcols)],
         "order": [{"column": c, "dir": dd} for c, dd in order],
         "start": start, "length": length,
         "search": {"value": search, "regex": False},
         "filters": filters,
         "visible": visible if visible is not None else [True] * len(allcols)}
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def browser_form(pairs):
    """application/x-www-form-urlencoded as a browser submits a <form>."""
    return "&".join(quote(k, safe="*-._").replace("%20", "+") + "=" +
                    quote(v, safe="*-._ ").replace(" ", "+") for k, v in pairs)


def edit(pairs, set_=None, drop=(), add=()):
    set_ = set_ or {}
    out = []
    for k, v in pairs:
        if k in drop:
            continue
        out.append((k, set_.get(k, v)))
    return out + list(add)


cases = []  # (name, method, path, body, ctype)
AUTH_CASES = set()


def ajax(name, view, pairs=None, body=None, path=None):
    if body is None:
        body = form(pairs)
    cases.append((name, "POST", path or f"/datatables/ajax/{view}", body, FORM))


def dl(name, view, fmt, cols, filters="", **kw):  # kw -> dt_params_json
    body = browser_form([("filters", filters), ("params", dt_params_json(cols, filters=filters, **kw)),
                         ("format", fmt)])
    cases.append((name, "POST", f"/datatables/filtered-download/{view}", body, FORM))


def get(name, path):
    cases.append((name, "GET", path, "", None))


# ---------------------------------------------------------------- the cases
# ===== s_*: samples table, default view (all columns, _id first) =============
sp = lambda **kw: dt_pairs(S_COLS, **kw)  # noqa: E731
ajax("s_first_draw", V_S, sp())
# jQuery's real Content-Type (DataTables' $.ajax default) carries a charset parameter
ajax("s_first_draw_jquery_ctype", V_S, sp(length=3))
cases[-1] = cases[-1][:4] + ("application/x-www-form-urlencoded; charset=UTF-8",)
ajax("s_page2_len5", V_S, sp(draw=2, start=5, length=5))
ajax("s_last_page_partial", V_S, sp(draw=3, start=15, length=10))
ajax("s_start_past_end", V_S, sp(draw=4, start=100, length=20))
ajax("s_length_0", V_S, sp(length=0))
ajax("s_length_minus1", V_S, sp(length=-1))
ajax("s_length_50000", V_S, sp(length=50000))
ajax("s_start_negative", V_S, sp(start=-5))
ajax("s_search_banana", V_S, sp(search="banana"))
ajax("s_search_prefix_ban", V_S, sp(search="ban"))
ajax("s_search_two_words", V_S, sp(search="banana item"))
ajax("s_search_number_12", V_S, sp(search="12"))
ajax("s_search_nomatch", V_S, sp(search="zzzz"))
ajax("s_search_special_chars", V_S, sp(search="c&r'y (x)"))
ajax("s_search_only_dash", V_S, sp(search="-"))
ajax("s_search_sorted_price_desc", V_S, sp(search="item", order=((4, "desc"),)))
ajax("s_colsearch_name_cher", V_S, sp(colsearch={2: "cher"}))
ajax("s_colsearch_category_fruit", V_S, sp(colsearch={3: "fruit"}))
ajax("s_colsearch_two_columns", V_S, sp(colsearch={2: "item", 3: "veg"}))
ajax("s_colsearch_int_column", V_S, sp(colsearch={1: "7"}))
ajax("s_colsearch_and_global_search", V_S, sp(search="banana", colsearch={3: "nut"}))
ajax("s_sort_name_asc", V_S, sp(order=((2, "asc"),)))
ajax("s_sort_name_desc", V_S, sp(order=((2, "desc"),)))
ajax("s_sort_price_desc", V_S, sp(order=((4, "desc"),)))
ajax("s_sort_created_desc", V_S, sp(order=((5, "desc"),)))
ajax("s_sort_active_asc", V_S, sp(order=((6, "asc"),)))
ajax("s_sort_meta_json", V_S, sp(order=((7, "asc"),)))
ajax("s_sort_multi_cat_asc_price_desc", V_S, sp(order=((3, "asc"), (4, "desc"))))
ajax("s_sort_multi_active_desc_name_asc", V_S, sp(order=((6, "desc"), (2, "asc"))))
ajax("s_sort_no_order", V_S, sp(order=()))
ajax("s_sort_dir_DESC_upper", V_S, sp(order=((1, "DESC"),)))
ajax("s_sort_dir_bogus", V_S, sp(order=((1, "sideways"),)))
ajax("s_user_filter_category", V_S, sp(filters="category:fruit"))
ajax("s_user_filter_two_values", V_S, sp(filters="category:fruit|category:veg"))
ajax("s_user_filter_two_fields", V_S, sp(filters="category:fruit|active:true"))
ajax("s_user_filter_unknown_field", V_S, sp(filters="nope:1"))
ajax("s_user_filter_pct_encoded", V_S, sp(filters="name:banana%20item%201"))
ajax("s_user_filter_in_query_string", V_S, edit(sp(), drop=("filters",)),
     path=f"/datatables/ajax/{V_S}?filters=category:nut")
ajax("s_user_filter_query_string_vs_empty_form", V_S, sp(),
     path=f"/datatables/ajax/{V_S}?filters=category:nut")
ajax("s_user_filter_double_unquote", V_S, sp(filters="category:fr%75it"))
ajax("s_user_filter_dup_values_and_no_colon", V_S, sp(filters="category:nut|category:nut|active"))
ajax("s_draw_echo_42", V_S, sp(draw=42))
ajax("s_draw_leading_zeros", V_S, sp(draw="007"))
# Python int() parsing: surrounding whitespace, '+', '_' separators, non-ASCII digits
ajax("s_draw_plus_underscore", V_S, sp(draw="+4_2"))
ajax("s_draw_unicode_digit", V_S, sp(draw="\u0663"))
ajax("s_start_spaces_underscore", V_S, sp(start=" 1_0 ", length=3))
# loops stop at the first missing index
ajax("s_sort_gap_in_order_index", V_S,
     edit(sp(order=((2, "desc"),)), add=(("order[2][column]", 3), ("order[2][dir]", "asc"))))
ajax("s_colsearch_after_gap_ignored", V_S,
     [p for p in sp(colsearch={3: "fruit"}) if not p[0].startswith("columns[1]")])
ajax("s_order_col_negative_python_index", V_S, sp(order=((-2, "desc"),)))
ajax("s_minimal_form", V_S, [("draw", 1), ("start", 0), ("length", 3), ("search[value]", "")])
# bad parameters
ajax("s_err_start_non_numeric", V_S, sp(start="abc"))
ajax("s_err_length_non_numeric", V_S, sp(length="ten"))
ajax("s_err_draw_non_numeric", V_S, sp(draw="x"))
ajax("s_err_missing_draw", V_S, edit(sp(), drop=("draw",)))
ajax("s_err_missing_search", V_S, edit(sp(), drop=("search[value]",)))
ajax("s_err_missing_start", V_S, edit(sp(), drop=("start",)))
ajax("s_err_order_col_out_of_range", V_S, sp(order=((99, "asc"),)))
ajax("s_err_order_col_negative", V_S, sp(order=((-1, "asc"),)))
ajax("s_err_order_col_non_numeric", V_S, sp(order=(("name", "asc"),)))
ajax("s_err_order_missing_dir", V_S, edit(sp(order=((2, "asc"),)), drop=("order[0][dir]",)))
ajax("s_err_colsearch_missing_name", V_S,
     edit(sp(colsearch={2: "banana"}), drop=("columns[2][name]",)))
ajax("s_err_colsearch_unknown_name", V_S,
     edit(sp(colsearch={2: "banana"}), set_={"columns[2][name]": "nope"}))
ajax("s_err_empty_body", V_S, body="")
ajax("s_err_json_body", V_S, body=json.dumps({"draw": 1, "start": 0, "length": 5,
                                              "search[value]": ""}))
cases[-1] = cases[-1][:4] + ("application/json",)
get("s_err_get_method", f"/datatables/ajax/{V_S}")
ajax("s_err_unknown_view_uuid", "d7000000-0000-4000-8000-0000000000ff", sp())
ajax("s_err_view_id_not_uuid", "not-a-view", sp())
ajax("s_err_view_id_is_resource_id", S, sp())
ajax("s_err_trailing_slash", V_S, sp(), path=f"/datatables/ajax/{V_S}/")
# filtered download (302 to /datastore/dump/...), and the dump it points to
dl("s_dl_csv_default", V_S, "csv", S_COLS)
dl("s_dl_json_search_sort", V_S, "json", S_COLS, search="item", order=((4, "desc"),))
dl("s_dl_tsv_colsearch_hidden_cols", V_S, "tsv", S_COLS, colsearch={3: "fruit"},
   visible=[True, True, True, False, True, False, True, False], order=((2, "asc"), (1, "desc")))
dl("s_dl_xml_user_filter", V_S, "xml", S_COLS, filters="category:veg")
cases.append(("s_dl_err_missing_params", "POST", f"/datatables/filtered-download/{V_S}",
              "format=csv", FORM))
cases.append(("s_dl_err_unknown_view", "POST",
              "/datatables/filtered-download/d7000000-0000-4000-8000-0000000000ff",
              browser_form([("filters", ""), ("params", dt_params_json(S_COLS)), ("format", "csv")]),
              FORM))
# the view page itself (HTML; carries a fresh CSRF token + session cookie each time)
get("s_view_page", f"/dataset/oracle-sample/resource/{S}/view/{V_S}")
# (the s_dl_*_follow GETs are appended at run time from the recorded Location headers)

# ===== u_*: ugly table, view 2 (show_fields subset incl. _id, view filter flag=true,
#       responsive, ellipsis 20, date NONE). JS columns: _id + U_SHOW minus _id. =====
U_JS = [c for c in U_SHOW if c != "_id"]
up = lambda **kw: dt_pairs(U_JS, **kw)  # noqa: E731
ajax("u_first_draw", V_U, up())
ajax("u_page2_len3", V_U, up(draw=2, start=3, length=3))
ajax("u_length_100", V_U, up(length=100))
ajax("u_search_apple", V_U, up(search="apple"))
ajax("u_search_unicode_cafe", V_U, up(search="café"))
ajax("u_search_cjk", V_U, up(search="日本"))
ajax("u_search_nomatch", V_U, up(search="nonexistentword"))
ajax("u_colsearch_full_name", V_U, up(colsearch={2: "alice"}))
ajax("u_colsearch_comma_column", V_U, up(colsearch={4: "x"}))
ajax("u_colsearch_weird_html", V_U, up(colsearch={5: "<tag"}))
ajax("u_sort_full_name_asc", V_U, up(order=((2, "asc"),)))
ajax("u_sort_full_name_desc", V_U, up(order=((2, "desc"),)))
ajax("u_sort_comma_column", V_U, up(order=((4, "asc"),)))
ajax("u_sort_price_desc", V_U, up(order=((8, "desc"),)))
ajax("u_sort_score_asc", V_U, up(order=((9, "asc"),)))
ajax("u_sort_multi_upper_desc_id_asc", V_U, up(order=((3, "desc"), (1, "asc"))))
ajax("u_sort_tags_array", V_U, up(order=((13, "asc"),)))
ajax("u_user_filter_same_field_widens", V_U, up(filters="flag:false"))
ajax("u_user_filter_same_value", V_U, up(filters="flag:true"))
ajax("u_user_filter_other_field", V_U, up(filters="UPPER:A"))
ajax("u_user_filter_hidden_field", V_U, up(filters="description:Lima has a market full of exotic fruits."))
ajax("u_err_order_col_out_of_range", V_U, up(order=((14, "asc"),)))
ajax("u_length_minus1", V_U, up(length=-1))
get("u_view_page", f"/dataset/oracle-golden/resource/{U}/view/{V_U}")
dl("u_dl_csv", V_U, "csv", U_JS, order=((2, "asc"),))
dl("u_dl_json_hidden_visible_flags", V_U, "json", U_JS, search="apple",
   visible=[True, True, False] + [True] * (len(U_JS) - 2))

# ===== ua_*: ugly table, view 3 (default: all columns) ======================
ua = lambda **kw: dt_pairs(U_ALL, **kw)  # noqa: E731
ajax("ua_first_draw_all_rows", V_UA, ua(length=50))
ajax("ua_search_oranges", V_UA, ua(search="oranges"))
ajax("ua_search_apostrophe", V_UA, ua(search="O'Hara"))
ajax("ua_colsearch_weird_backslash", V_UA, ua(colsearch={6: "back\\slash"}))
ajax("ua_colsearch_day_date_column", V_UA, ua(colsearch={7: "2024"}))
ajax("ua_colsearch_price_numeric_column", V_UA, ua(colsearch={10: "2.5"}))
ajax("ua_sort_day_desc", V_UA, ua(order=((7, "desc"),), length=5))
ajax("ua_sort_at_time_asc", V_UA, ua(order=((8, "asc"),), length=5))
ajax("ua_sort_score_desc_nan_inf", V_UA, ua(order=((11, "desc"),), length=5))
ajax("ua_sort_big_asc", V_UA, ua(order=((12, "asc"),), length=5))
ajax("ua_sort_nums_array_desc", V_UA, ua(order=((17, "desc"),), length=5))
ajax("ua_sort_meta_json", V_UA, ua(order=((15, "asc"),), length=5))
ajax("ua_user_filter_comma_field", V_UA, ua(filters="a,b:x,y"))
ajax("ua_user_filter_colon_in_value", V_UA, ua(filters="at_time:12:30:45"))

# ===== un_*: ugly table, view 4 (show_fields without _id -> index shift) ====
un = lambda **kw: dt_pairs(UN_SHOW, **kw)  # noqa: E731
ajax("un_first_draw", V_UN, un(length=5))
ajax("un_sort_col1", V_UN, un(order=((1, "desc"),), length=5))
ajax("un_sort_last_col", V_UN, un(order=((4, "asc"),), length=5))

# ===== p_*: private dataset, view 5 ========================================
pp = lambda **kw: dt_pairs(P_COLS, **kw)  # noqa: E731
ajax("p_anonymous", V_P, pp())
ajax("p_sysadmin_token", V_P, pp())
AUTH_CASES.add("p_sysadmin_token")
dl("p_dl_anonymous", V_P, "csv", P_COLS)
# ===== n_*: view on a resource without DataStore table (view 6) ===========
ajax("n_no_datastore_table", V_N, dt_pairs(["x"]))
dl("n_dl_no_datastore_table", V_N, "csv", ["x"])
ajax("bf_view_filter_unknown_column", V_BF, dt_pairs(S_COLS))
ajax("d_deleted_resource_anonymous", V_D, dt_pairs(["x"]))
ajax("d_deleted_resource_sysadmin", V_D, dt_pairs(["x"]))
AUTH_CASES.add("d_deleted_resource_sysadmin")
get("p_view_page_anonymous",
    f"/dataset/oracle-dt-private/resource/{P}/view/{V_P}")


# ------------------------------------------------------------------ recording
def ext_for(body, ct):
    try:
        json.loads(body)
        return "json"
    except Exception:
        pass
    ct = ct or ""
    if ct.startswith("application/json"):
        return "json"
    if ct.startswith("application/javascript"):
        return "js"
    if ct.startswith("text/html"):
        return "html"
    if ct.startswith("text/"):
        return "txt"
    return "bin"


def record(name, method, path, body, ctype):
    base = os.path.join(OUT, name)
    argv = ["curl", "-s", "-g", "-o", base + ".body", "-D", base + ".headers",
            "-w", "status=%{http_code}\\ncontent_type=%{content_type}\\n"
                  "time_total=%{time_total}\\n"]
    if name in AUTH_CASES:
        argv += ["-H", f"Authorization: {TOKEN}"]
    if method == "POST":
        argv += ["-X", "POST", "-H", f"Content-Type: {ctype}", "--data-binary", body]
    else:
        argv += ["-X", method]
    meta = subprocess.run(argv + [BASE + path], capture_output=True, check=True).stdout.decode()
    heads = open(base + ".headers", "rb").read().decode("latin-1")
    loc = re.search(r"^Location: *(.*?)\r?$", heads, re.M | re.I)
    if loc:
        meta += f"location={loc.group(1)}\n"
    with open(base + ".meta", "w") as f:
        f.write(meta)
    with open(base + ".request", "w") as f:
        if method == "POST":
            f.write(f"{method}\t{path}\t{body}\t{ctype}\n")
        else:
            f.write(f"{method}\t{path}\t\n")
    ct = re.search(r"^content_type=(.*)$", meta, re.M).group(1)
    raw = open(base + ".body", "rb").read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    ext = ext_for(text, ct) if text is not None else "bin"
    for e in ("json", "js", "html", "txt", "bin"):
        if os.path.exists(f"{base}.{e}"):
            os.remove(f"{base}.{e}")
    os.rename(base + ".body", f"{base}.{ext}")
    return loc.group(1) if loc else None


def main():
    os.makedirs(OUT, exist_ok=True)
    if not NO_SETUP:
        setup()
    n = 0
    todo = list(cases)
    with open(os.path.join(OUT, "cases.tsv"), "w") as tsv:
        tsv.write("# generated by record_datatables.py; NAME METHOD PATH BODY [CTYPE]\n")
        i = 0
        while i < len(todo):
            name, method, path, body, ctype = todo[i]
            i += 1
            assert "\t" not in body and "\n" not in body, name
            tsv.write("\t".join([name, method, path, body] + ([ctype] if ctype else [])) + "\n")
            if ONLY and not name.startswith(ONLY):
                continue
            if name in AUTH_CASES and not TOKEN:
                print(f"skipping {name}: needs TOKEN", file=sys.stderr)
                continue
            loc = record(name, method, path, body, ctype)
            n += 1
            # follow the filtered-download redirect once (GET the dump it points to)
            if loc and "_dl_" in name and "_err_" not in name and method == "POST":
                p = re.sub(r"^https?://[^/]+", "", loc)
                todo.insert(i, (name + "_follow", "GET", p, "", None))
    print(f"recorded {n} responses into {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
