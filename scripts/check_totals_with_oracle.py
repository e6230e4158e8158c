#!/usr/bin/env python3
"""Writes through the real CKAN (datastore_create / _upsert / _delete / _records_delete, with
every calculate_record_count value) and checks that our server's very next search returns the
exact total, filtered and unfiltered, each time.

Our server must read the oracle's DataStore with its write URL configured (as --ckan-ini gives):
  ckan-datastore serve --all-tables-public --listen 127.0.0.1:8801 --site-url http://127.0.0.1:5000 \
    --read-url postgresql://datastore_default:datastore_default@127.0.0.1:5432/datastore_default \
    --write-url postgresql://ckan_default:ckan_default@127.0.0.1:5432/datastore_default

usage: scripts/check_totals_with_oracle.py [OURS] [CKAN] [TOKEN_FILE]
"""
import json, subprocess, sys, urllib.request

OURS = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8801"
CKAN = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:5000"
TOKEN = open(sys.argv[3] if len(sys.argv) > 3 else "../shared/oracle/var/token").read().strip()
RID = "55555555-5555-4555-8555-555555555555"

def call(base, action, body, token=None):
    req = urllib.request.Request(f"{base}/api/3/action/{action}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **({"Authorization": token} if token else {})})
    try:
        return json.loads(urllib.request.urlopen(req).read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())

def exact(where=""):
    out = subprocess.run(["psql", "-At", "-h", "127.0.0.1", "-U", "datastore_default", "datastore_default", "-c",
                          f'SELECT count(*) FROM "{RID}" {where}'],
                         env={"PGPASSWORD": "datastore_default", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    return int(out.stdout.strip())

def ensure_resource():
    r = call(CKAN, "resource_show", {"id": RID}, TOKEN)
    if r.get("success"):
        return
    call(CKAN, "organization_create", {"name": "oracle"}, TOKEN)
    pkg = call(CKAN, "package_show", {"id": "oracle-totals"}, TOKEN)
    if not pkg.get("success"):
        pkg = call(CKAN, "package_create", {"name": "oracle-totals", "owner_org": "oracle"}, TOKEN)
    r = call(CKAN, "resource_create", {"package_id": "oracle-totals", "id": RID, "url": "http://x", "name": "totals"}, TOKEN)
    assert r.get("success"), r

def check(label):
    bad = 0
    for flt, where in [(None, ""), ({"cat": "a"}, "WHERE cat = 'a'")]:
        body = {"resource_id": RID, "limit": 1, **({"filters": flt} if flt else {})}
        ours = call(OURS, "datastore_search", body)["result"]["total"]
        want = exact(where)
        ckan = call(CKAN, "datastore_search", body)["result"]["total"]
        status = "ok" if ours == want else "STALE"
        bad += ours != want
        print(f"{label:45} filter={json.dumps(flt):14} ours={ours:4} exact={want:4} ckan={ckan:4} {status}")
    return bad

ensure_resource()
call(CKAN, "datastore_delete", {"resource_id": RID, "force": True}, TOKEN)
bad = 0
for crc in [False, "background", True]:
    r = call(CKAN, "datastore_create", {"resource_id": RID, "force": True, "primary_key": ["id"],
             "fields": [{"id": "id", "type": "int"}, {"id": "cat", "type": "text"}],
             "records": [{"id": i, "cat": "ab"[i % 2]} for i in range(40)],
             "calculate_record_count": crc}, TOKEN)
    assert r.get("success"), r
    bad += check(f"create (calculate_record_count={crc})")
    # Warm our cache, then write through CKAN.
    for step, (action, body) in enumerate([
        ("datastore_upsert", {"records": [{"id": 100 + i, "cat": "a"} for i in range(5)], "method": "insert"}),
        ("datastore_upsert", {"records": [{"id": 1, "cat": "a"}, {"id": 3, "cat": "a"}], "method": "upsert"}),
        ("datastore_delete", {"filters": {"cat": "b"}}),
        ("datastore_records_delete", {"filters": {"id": [100, 101]}}),
        ("datastore_upsert", {"records": [{"id": 200, "cat": "a"}], "method": "insert"}),
    ]):
        check("  (warm)")
        r = call(CKAN, action, {"resource_id": RID, "force": True, "calculate_record_count": crc, **body}, TOKEN)
        assert r.get("success"), r
        bad += check(f"{action} #{step} (calculate_record_count={crc})")
    call(CKAN, "datastore_delete", {"resource_id": RID, "force": True}, TOKEN)
print("all exact" if bad == 0 else f"{bad} stale totals")
sys.exit(1 if bad else 0)
