#!/usr/bin/env python3
"""Access-control matrix of /work/shared/spec/ckan-auth.md §7, live: caller × resource state × endpoint,
sent to a real CKAN 2.12 (the oracle) and optionally to our server on the same databases.

  scripts/auth_matrix_vs_oracle.py                          # oracle only: fixtures, matrix, spec check (~20 s)
  scripts/auth_matrix_vs_oracle.py --ours http://127.0.0.1:8801          # + diff ours vs CKAN
  scripts/auth_matrix_vs_oracle.py --record target/authspec-ckan.json    # also save CKAN's answers
  scripts/auth_matrix_vs_oracle.py --ours URL --replay target/authspec-ckan.json  # CKAN's answers from file
  options: --ckan URL (default http://127.0.0.1:5000), --sql (also datastore_search_sql), --no-flip,
           --filter REGEX (on "caller state endpoint"; skips single checks and flips), --jobs N (4),
           --state FILE, --ckan-ini FILE, --sysadmin-token-file FILE, --strict-help, -v

Stdlib only (python3 >= 3.8) plus the `psql` client. Creates the `authspec-*` fixtures of the spec's
Appendix A through CKAN's action API as the sysadmin (token from --sysadmin-token-file), plus the
SQL-only steps (collaborator rows, legacy apikey, pending user state) on the main DB URL of the CKAN
ini. Idempotent: existing fixtures are reused; ids, tokens and login cookies are kept in the state
file (default target/authspec-state.json, mode 600: it holds live credentials of the test users).
SECRET_KEY is read from the ini to forge tokens and is never printed. --replay needs that state file.

Per cell: status; JSON errors: `error` object + `help` path/query (host ignored unless --strict-help);
JSON 200: result.records (datastore_info: result.fields); dumps: body bytes; HTML pages: status +
text/html only. Our server's intended deviations count as EXPECTED DIFF: §4.4 bypasses closed (R13 sql,
R14 search/sql/dump → 404 for non-sysadmins; R14 info "Not found"; ts_rewrite → 403) and dump 500 → 404.
CKAN's own answers are checked against the spec tables (§7.3, §7.4) as well. Then a membership
(authspec-flipper) and a dataset's privacy (authspec-flip) are flipped and back, checking the very
next request on every server. Exit status: 0 ok; |1 unexpected ours-vs-CKAN difference (or a flip
failure on ours); |2 CKAN differs from the spec; 4 setup error.
"""
import argparse, base64, concurrent.futures as cf, configparser, hashlib, hmac, http.client, json, os, re
import subprocess, sys, threading, time, urllib.parse

PASSWORD = "authspec-pass-123456"
LEGACY_APIKEY = "authspec-legacy-apikey-0000-000000000001"
FIELDS = [{"id": "k", "type": "int"}, {"id": "v", "type": "text"}]
ROWS = [{"k": 1, "v": "one"}, {"k": 2, "v": "two"}]
SECRET_ROWS = [{"k": 7, "v": "secret-seven"}]
USERS = ["authspec-member", "authspec-editor", "authspec-admin", "authspec-outsider", "authspec-otherorg",
         "authspec-collab", "authspec-deleteduser", "authspec-pending", "authspec-legacykey",
         "authspec-exmember", "authspec-flipper"]
ORG, ORG2 = "authspec-org", "authspec-org2"
MEMBERSHIPS = [(ORG, "authspec-admin", "admin"), (ORG, "authspec-editor", "editor"),
               (ORG, "authspec-member", "member"), (ORG, "authspec-flipper", "member"),
               (ORG2, "authspec-otherorg", "admin")]
# name, private, final state, aliases (all in authspec-org)
DATASETS = [("authspec-public", False, "active", ["authspec-alias-pub"]),
            ("authspec-private", True, "active", ["authspec-alias-priv", "authspec-alias-collide"]),
            ("authspec-draft", False, "draft", []),
            ("authspec-draft-private", True, "draft", []),
            ("authspec-deleted-ds", False, "deleted", []),
            ("authspec-deleted-ds-private", True, "deleted", []),
            ("authspec-res-deleted", False, "res-deleted", []),
            ("authspec-res-removed", False, "res-removed", []),
            ("authspec-flip", False, "active", [])]
STATES = ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "TM"]
R12_ID = "authspec-00000000-0000-4000-8000-000000000000"
EP_ALL = ["search", "info", "dump", "sql"]

# spec §7.3 / §7.4 expected statuses, per state: (S, M, N)
SPEC = {
    "search": {"R1": (200, 200, 200), "R2": (200, 200, 200), "R3": (200, 200, 403), "R4": (200, 200, 403),
               "R5": (200, 200, 403), "R6": (200, 200, 403), "R7": (200, 200, 403), "R8": (200, 200, 403),
               "R9": (404, 404, 404), "R10": (200, 200, 200), "R11": (200, 404, 404), "R12": (404, 404, 404),
               "R13": (200, 200, 403), "R14": (200, 200, 200), "TM": (200, 200, 200)},
    "info": {"R1": (200, 200, 200), "R2": (200, 200, 200), "R3": (200, 200, 403), "R4": (200, 200, 403),
             "R5": (200, 200, 403), "R6": (200, 200, 403), "R7": (200, 200, 403), "R8": (200, 200, 403),
             "R9": (404, 404, 404), "R10": (404, 404, 404), "R11": (404, 404, 404), "R12": (404, 404, 404),
             "R13": (200, 200, 403), "R14": (404, 404, 404), "TM": (404, 404, 404)},
    "sql": {"R1": (200, 200, 200), "R2": (200, 404, 404), "R3": (200, 200, 403), "R4": (200, 404, 404),
            "R5": (200, 200, 403), "R6": (200, 200, 403), "R7": (200, 200, 403), "R8": (200, 200, 403),
            "R9": (409, 409, 409), "R10": (200, 200, 200), "R11": (200, 404, 404), "R12": (409, 404, 404),
            "R13": (200, 200, 200), "R14": (200, 200, 200), "TM": (409, 404, 404)},  # TM: no column k
    "dump": {"R1": (200, 200, 200), "R2": (200, 200, 200), "R3": (200, 200, 404), "R4": (200, 200, 404),
             "R5": (200, 200, 404), "R6": (200, 200, 404), "R7": (200, 200, 404), "R8": (200, 200, 404),
             "R9": (404, 404, 404), "R10": (200, 200, 200), "R11": (200, 500, 500), "R12": (404, 404, 404),
             "R13": (200, 200, 404), "R14": (200, 200, 200), "TM": (200, 500, 500)},
}


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(4)


# ---------------------------------------------------------------- HTTP
class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name, default=""):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    @property
    def ctype(self):
        return self.header("Content-Type").split(";")[0].strip().lower()

    def cookies(self):
        out = {}
        for k, v in self.headers:
            if k.lower() == "set-cookie":  # kept by hand: CKAN sends an empty Domain=
                name, _, rest = v.partition("=")
                out[name.strip()] = rest.split(";")[0]
        return out

    def json(self):
        return json.loads(self.body)


def send(base, method, path, body=None, headers=None, timeout=120):
    u = urllib.parse.urlsplit(base)
    h = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    for attempt in range(3):
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        try:
            conn.request(method, u.path.rstrip("/") + path, body=body, headers=h)
            r = conn.getresponse()
            return Resp(r.status, r.getheaders(), r.read())
        except (ConnectionError, http.client.RemoteDisconnected) as e:
            if attempt == 2:
                raise
            time.sleep(0.3)
        finally:
            conn.close()


# ---------------------------------------------------------------- crypto (forged credentials)
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def make_jwt(payload, key, alg="HS256"):
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64u(json.dumps(payload, separators=(",", ":")).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


def jwt_payload(tok):
    return json.loads(b64u_dec(tok.split(".")[1]))


def tamper_cookie(value):
    # flip one character in the middle of the signature (the last char can carry only padding bits)
    payload, _, sig = value.rpartition(".")
    i = len(sig) // 2
    return f"{payload}.{sig[:i]}{'B' if sig[i] != 'B' else 'C'}{sig[i + 1:]}"


def read_ini(path):
    cp = configparser.ConfigParser(defaults={"here": os.path.dirname(os.path.abspath(path)),
                                             "__file__": os.path.abspath(path)}, strict=False)
    cp.read(path)
    return cp["app:main"]


def decode_key(ini):
    v = ini.get("api_token.jwt.decode.secret", fallback="") or ""
    if not v:
        v = "string:" + (ini.get("SECRET_KEY", fallback="") or ini.get("beaker.session.secret", fallback=""))
    typ, sep, val = v.partition(":")
    if not sep or not val:
        die("no usable api_token.jwt.decode.secret / SECRET_KEY in the ini")
    if typ == "file":
        with open(val) as f:
            return f.read()
    return val


# ---------------------------------------------------------------- CKAN + SQL setup helpers
class Ckan:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, action, data, ok=True):
        r = send(self.base, "POST", f"/api/3/action/{action}", data, {"Authorization": self.token})
        try:
            j = r.json()
        except ValueError:
            j = {"success": False, "error": r.body[:300].decode("utf-8", "replace")}
        if ok and not j.get("success"):
            die(f"{action} {json.dumps(data)[:200]} -> {r.status} {json.dumps(j.get('error'))[:400]}")
        return j.get("result") if j.get("success") else j


def psql(url, sql):
    p = subprocess.run(["psql", url, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    if p.returncode:
        die(f"psql failed: {p.stderr.strip()[:400]}")
    return p.stdout.strip()


def psql_json(url, sql):
    out = psql(url, sql)
    return json.loads(out) if out else None


def q(s):
    return "'" + s.replace("'", "''") + "'"


SNAPSHOT_SQL = """
select json_build_object(
 'users', (select json_object_agg(name, json_build_object('id', id, 'state', state, 'apikey', apikey))
             from "user" where name like 'authspec-%' or name = 'oracle'),
 'orgs', (select json_object_agg(name, id) from "group" where name like 'authspec-%'),
 'packages', (select json_object_agg(p.name, json_build_object('id', p.id, 'state', p.state,
      'private', p.private, 'owner_org', p.owner_org,
      'resources', (select coalesce(json_agg(json_build_object('id', r.id, 'name', r.name, 'state', r.state)
                        order by r.position, r.created), '[]'::json) from resource r where r.package_id = p.id)))
      from package p where p.name like 'authspec-%'),
 'members', (select coalesce(json_agg(json_build_object('org', g.name, 'user', u.name, 'capacity', m.capacity,
      'state', m.state)), '[]'::json)
      from member m join "group" g on g.id = m.group_id join "user" u on u.id = m.table_id
      where m.table_name = 'user' and g.name like 'authspec-%'),
 'collabs', (select coalesce(json_agg(p.name || '|' || u.name || '|' || pm.capacity), '[]'::json)
      from package_member pm join package p on p.id = pm.package_id join "user" u on u.id = pm.user_id
      where u.name like 'authspec-%'),
 'tokens', (select coalesce(json_object_agg(t.id, json_build_array(u.name, t.name)), '{}'::json) from api_token t
      join "user" u on u.id = t.user_id where t.name like 'authspec-%'))
"""


class Fixtures:
    def __init__(self, args, ini, state):
        self.args, self.state = args, state
        self.main_url = ini.get("sqlalchemy.url")
        self.ds_url = ini.get("ckan.datastore.write_url")
        with open(args.sysadmin_token_file) as f:
            self.api = Ckan(args.ckan, f.read().strip())
        self.log = []

    def note(self, msg):
        self.log.append(msg)
        print(f"  setup: {msg}", flush=True)

    def snap(self):
        s = psql_json(self.main_url, SNAPSHOT_SQL)
        for k in ("users", "orgs", "packages"):
            s[k] = s[k] or {}
        meta = psql_json(self.ds_url, "select coalesce(json_object_agg(name, alias_of), '{}'::json) from _table_metadata")
        s["tables"] = {n for n, a in meta.items() if a is None}
        s["aliases"] = {n: a for n, a in meta.items() if a is not None}
        return s

    def resource_exists(self, rid):
        return psql(self.main_url, f"select count(*) from resource where id = {q(rid)}") != "0"

    def table_rows(self, tid):
        return psql_json(self.ds_url, f'select coalesce(json_agg(json_build_object(\'k\', k, \'v\', v) order by _id), '
                                      f'\'[]\'::json) from "{tid}"')

    def orphan_ok(self, tid, rows, s):
        try:
            return tid in s["tables"] and not self.resource_exists(tid) and self.table_rows(tid) == rows
        except SystemExit:
            return False

    def make_table(self, pid, name, rows, aliases=()):
        r = self.api.call("datastore_create", {"resource": {"package_id": pid, "name": name},
                                               "fields": FIELDS, "records": rows, "aliases": list(aliases)})
        return r["resource_id"]

    def token_for(self, user, s, name="authspec-token"):
        toks = self.state.setdefault("tokens", {})
        t = toks.get(user)
        if t:
            try:
                if s["tokens"].get(jwt_payload(t)["jti"], [None])[0] == user:
                    return t
            except Exception:
                pass
        for jti, (u, n) in s["tokens"].items():  # keep one live token per user (state file lost)
            if u == user and n == name:
                self.api.call("api_token_revoke", {"jti": jti})
        st = s["users"][user]["state"]
        if st != "active":  # a deleted/pending user gets its token while briefly active again
            psql(self.main_url, f"update \"user\" set state = 'active' where name = {q(user)}")
        try:
            t = self.api.call("api_token_create", {"user": user, "name": name})["token"]
        finally:
            if st != "active":
                psql(self.main_url, f"update \"user\" set state = {q(st)} where name = {q(user)}")
        self.note(f"token for {user}")
        toks[user] = t
        return t

    def ensure(self):
        s = self.snap()
        for org in (ORG, ORG2):
            if org not in s["orgs"]:
                self.api.call("organization_create", {"name": org})
                self.note(f"organization {org}")
        for u in USERS:
            if u not in s["users"]:
                self.api.call("user_create", {"name": u, "email": f"{u}@example.com", "password": PASSWORD})
                self.note(f"user {u}")
        s = self.snap()
        active = {(m["org"], m["user"]): m["capacity"] for m in s["members"] if m["state"] == "active"}
        for org, user, cap in MEMBERSHIPS:
            if active.get((org, user)) != cap:
                self.api.call("organization_member_create", {"id": org, "username": user, "role": cap})
                self.note(f"{user} {cap} of {org}")
        ex = [m for m in s["members"] if m["org"] == ORG and m["user"] == "authspec-exmember"]
        if not ex:
            self.api.call("organization_member_create", {"id": ORG, "username": "authspec-exmember", "role": "member"})
        if not ex or any(m["state"] == "active" for m in ex):
            self.api.call("organization_member_delete", {"id": ORG, "username": "authspec-exmember"})
            self.note("authspec-exmember added to and removed from authspec-org")
        s = self.snap()
        # tokens (before the users are deleted / made pending), and the revoked one
        for u in ["oracle"] + USERS:
            self.token_for(u, s)
        rv = self.state.get("revoked_token")
        if not rv or jwt_payload(rv)["jti"] in s["tokens"]:
            rv = self.api.call("api_token_create", {"user": "authspec-member", "name": "authspec-revoked"})["token"]
            self.api.call("api_token_revoke", {"jti": jwt_payload(rv)["jti"]})
            self.state["revoked_token"] = rv
            self.note("revoked token of authspec-member")
        if s["users"]["authspec-deleteduser"]["state"] != "deleted":
            self.api.call("user_delete", {"id": "authspec-deleteduser"})
            self.note("user_delete authspec-deleteduser")
        if s["users"]["authspec-pending"]["state"] != "pending":
            psql(self.main_url, "update \"user\" set state = 'pending' where name = 'authspec-pending'")
            self.note("SQL: authspec-pending state pending")
        if s["users"]["authspec-legacykey"]["apikey"] != LEGACY_APIKEY:
            psql(self.main_url, f"update \"user\" set apikey = {q(LEGACY_APIKEY)} where name = 'authspec-legacykey'")
            self.note("SQL: authspec-legacykey apikey")

        # datasets with one resource + table each
        ids = {}
        for name, private, final, aliases in DATASETS:
            p = s["packages"].get(name)
            if p is None:
                p = self.api.call("package_create", {"name": name, "owner_org": ORG, "private": private})
                p = {"id": p["id"], "state": "active", "private": private, "resources": []}
                self.note(f"dataset {name}")
            pid = p["id"]
            if not p["resources"]:
                rid = self.make_table(pid, name, ROWS, aliases)
                self.note(f"table {rid} for {name}")
                rstate, has_table = "active", True
            else:
                rid, rstate = p["resources"][0]["id"], p["resources"][0]["state"]
                has_table = rid in s["tables"]
                if not has_table and final != "res-deleted" and rstate == "active":
                    self.api.call("datastore_create", {"resource_id": rid, "force": True, "fields": FIELDS,
                                                       "records": ROWS, "aliases": aliases})
                    self.note(f"table {rid} for {name}")
                    has_table = True
                missing = [a for a in aliases if s["aliases"].get(a) != rid]
                if missing and has_table:
                    self.api.call("datastore_create", {"resource_id": rid, "force": True, "aliases": missing})
                    self.note(f"aliases {missing}")
            ids[name] = rid
            if p.get("private") != private and final in ("active",):
                self.api.call("package_patch", {"id": pid, "private": private})
                self.note(f"{name} private={private}")
            if final == "active" and p["state"] != "active":
                self.api.call("package_patch", {"id": pid, "state": "active"})
            if final == "draft" and p["state"] != "draft":
                self.api.call("package_patch", {"id": pid, "state": "draft"})
                self.note(f"{name} -> draft")
            if final == "deleted" and p["state"] != "deleted":
                self.api.call("package_delete", {"id": pid})
                self.note(f"package_delete {name}")
            if final == "res-deleted" and rstate != "deleted":
                self.api.call("resource_delete", {"id": rid})
                self.note(f"resource_delete {rid}")
            if final == "res-removed" and rstate != "deleted":
                self.api.call("package_patch", {"id": pid, "resources": []})
                self.note(f"package_patch {name} resources=[]")

        # collaborator rows (SQL: the API refuses while collaborators are disabled)
        for pkg, cap in (("authspec-private", "editor"), ("authspec-draft-private", "member")):
            if f"{pkg}|authspec-collab|{cap}" not in s["collabs"]:
                psql(self.main_url, f"""insert into package_member (package_id, user_id, capacity, modified)
                    select p.id, u.id, {q(cap)}, now() at time zone 'utc' from package p, "user" u
                    where p.name = {q(pkg)} and u.name = 'authspec-collab'
                    on conflict (package_id, user_id) do update set capacity = excluded.capacity""")
                self.note(f"SQL: authspec-collab {cap} collaborator on {pkg}")

        s = self.snap()
        orphans = None

        def find_orphan(rows):
            nonlocal orphans
            if orphans is None:
                cand = sorted(t for t in s["tables"] if re.fullmatch(r"[0-9a-f-]{36}", t))
                have = set(psql(self.main_url, "select id from resource where id in (%s)" %
                                ",".join(q(t) for t in cand)).split()) if cand else set()
                orphans = [t for t in cand if t not in have]
            for t in orphans:
                if self.table_rows(t) == rows:
                    return t

        # R11: orphan table of a purged dataset
        r11 = self.state.get("R11")
        if not (r11 and self.orphan_ok(r11, ROWS, s)):
            r11 = find_orphan(ROWS)
            if not r11:
                p = s["packages"].get("authspec-purged") or self.api.call(
                    "package_create", {"name": "authspec-purged", "owner_org": ORG})
                r11 = self.make_table(p["id"], "authspec-purged", ROWS)
                self.api.call("dataset_purge", {"id": p["id"]})
                self.note(f"R11 orphan {r11} (authspec-purged purged)")
        self.state["R11"] = r11

        # R14: orphan of a purged private dataset, then a public resource named like it
        coll = s["packages"].get("authspec-name-collision")
        r14 = self.state.get("R14")
        if not (r14 and self.orphan_ok(r14, SECRET_ROWS, s)):
            r14 = None
            for r in (coll or {}).get("resources", []):
                if re.fullmatch(r"[0-9a-f-]{36}", r["name"] or "") and self.orphan_ok(r["name"], SECRET_ROWS, s):
                    r14 = r["name"]
            r14 = r14 or find_orphan(SECRET_ROWS)
            if not r14:
                p = s["packages"].get("authspec-purged-private") or self.api.call(
                    "package_create", {"name": "authspec-purged-private", "owner_org": ORG, "private": True})
                r14 = self.make_table(p["id"], "authspec-purged-private", SECRET_ROWS)
                self.api.call("dataset_purge", {"id": p["id"]})
                self.note(f"R14 orphan {r14} (authspec-purged-private purged)")
        self.state["R14"] = r14
        if coll is None:
            coll = self.api.call("package_create", {"name": "authspec-name-collision", "owner_org": ORG2})
            coll["resources"] = []
            self.note("dataset authspec-name-collision (authspec-org2)")
        names = {r["name"] for r in coll["resources"] if r["state"] == "active"}
        for rn in ("authspec-alias-collide", r14):
            if rn not in names:
                self.api.call("resource_create", {"package_id": coll["id"], "name": rn, "url": ""})
                self.note(f"public resource named {rn}")

        self.state["ids"] = ids
        self.verify()

    def verify(self):
        """Checks the final fixture states; prints a problem list (does not stop)."""
        s = self.snap()
        ids, probs = self.state["ids"], []
        want = {"authspec-public": ("active", False, "active", True), "authspec-private": ("active", True, "active", True),
                "authspec-draft": ("draft", False, "active", True), "authspec-draft-private": ("draft", True, "active", True),
                "authspec-deleted-ds": ("deleted", False, "active", True),
                "authspec-deleted-ds-private": ("deleted", True, "active", True),
                "authspec-res-deleted": ("active", False, "deleted", False),
                "authspec-res-removed": ("active", False, "deleted", True), "authspec-flip": ("active", False, "active", True)}
        for name, (pst, priv, rst, tab) in want.items():
            p = s["packages"].get(name)
            r = p and next((r for r in p["resources"] if r["id"] == ids.get(name)), None)
            got = p and (p["state"], p["private"], r and r["state"], ids.get(name) in s["tables"])
            if got != (pst, priv, rst, tab):
                probs.append(f"{name}: want (pkg state, private, res state, table)={(pst, priv, rst, tab)} got {got}")
        for a, tgt in (("authspec-alias-pub", "authspec-public"), ("authspec-alias-priv", "authspec-private"),
                       ("authspec-alias-collide", "authspec-private")):
            if s["aliases"].get(a) != ids.get(tgt):
                probs.append(f"alias {a} -> {s['aliases'].get(a)}, want {ids.get(tgt)}")
        users = s["users"]
        for u, st in (("authspec-deleteduser", "deleted"), ("authspec-pending", "pending")):
            if users[u]["state"] != st:
                probs.append(f"{u} state {users[u]['state']}")
        if "authspec-purged" in s["packages"] or "authspec-purged-private" in s["packages"]:
            probs.append("a purged dataset still exists")
        if R12_ID in s["tables"] or R12_ID in s["aliases"]:
            probs.append("R12 id exists")
        for p in probs:
            print(f"  FIXTURE PROBLEM: {p}")
        self.state["fixture_problems"] = probs
        self.state["users"] = {u: v["id"] for u, v in users.items()}
        self.state["orgs"] = s["orgs"]

    def login(self, remember):
        base = self.args.ckan
        r = send(base, "GET", "/user/login")
        jar = r.cookies()
        m = re.search(rb'name="_csrf_token" value="([^"]+)"', r.body)
        rm = re.search(rb'name="remember" value="([^"]+)"', r.body)
        form = {"login": "authspec-member", "password": PASSWORD, "_csrf_token": m.group(1).decode()}
        if remember:
            form["remember"] = rm.group(1).decode() if rm else "63072000"
        r2 = send(base, "POST", "/user/login", urllib.parse.urlencode(form).encode(),
                  {"Content-Type": "application/x-www-form-urlencoded",
                   "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())})
        jar2 = r2.cookies()
        if r2.status not in (302, 303) or "ckan" not in jar2:
            die(f"login of authspec-member failed: {r2.status}")
        return jar2

    def cookies(self):
        plain = self.login(False)
        rem = self.login(True)
        if "remember_token" not in rem:
            die("login with remember set no remember_token cookie")
        self.state["cookies"] = {"session": plain["ckan"], "remember": rem["remember_token"]}


# ---------------------------------------------------------------- callers
class Caller:
    def __init__(self, name, cls, headers=None, cookies=None, who="", callback=False, qs=None, dump_cls=None,
                 cookie_auth=False):
        self.name, self.cls, self.headers, self.cookies = name, cls, headers or {}, cookies or {}
        self.who, self.callback, self.qs, self.dump_cls = who, callback, qs or {}, dump_cls or cls
        self.cookie_auth = cookie_auth  # authenticated by cookie only: POSTs are CSRF-checked by CKAN 2.12

    def cls_for(self, ep):
        return self.dump_cls if ep == "dump" else self.cls

    def who_for(self, ep):
        return "authspec-member" if (ep == "dump" and self.callback) else self.who


def build_callers(st, key):
    T = st["tokens"]
    m, outsider = T["authspec-member"], T["authspec-outsider"]
    jti = jwt_payload(m)["jti"]
    iat = jwt_payload(m)["iat"]
    now = int(time.time())
    sess, rem = st["cookies"]["session"], st["cookies"]["remember"]
    C = [Caller("S:sysadmin-token", "S", {"Authorization": T["oracle"]}),
         Caller("M:admin-token", "M", {"Authorization": T["authspec-admin"]}),
         Caller("M:editor-token", "M", {"Authorization": T["authspec-editor"]}),
         Caller("M:member-token", "M", {"Authorization": m}),
         Caller("M:member-token-lowercase-hdr", "M", {"authorization": m}),
         Caller("M:member-jwt-resigned(control)", "M", {"Authorization": make_jwt({"jti": jti, "iat": iat}, key)}),
         Caller("M:session-cookie", "M", cookies={"ckan": sess}, cookie_auth=True),
         Caller("M:remember-cookie-alone", "M", cookies={"remember_token": rem}, cookie_auth=True),
         Caller("M:session-cookie+bad-token", "M", {"Authorization": "not-a-jwt"}, {"ckan": sess}, cookie_auth=True),
         Caller("N:anonymous", "N"),
         Caller("N:outsider-token", "N", {"Authorization": outsider}, who="authspec-outsider"),
         Caller("N:otherorg-admin-token", "N", {"Authorization": T["authspec-otherorg"]}, who="authspec-otherorg"),
         Caller("N:collab-token", "N", {"Authorization": T["authspec-collab"]}, who="authspec-collab"),
         Caller("N:exmember-token", "N", {"Authorization": T["authspec-exmember"]}, who="authspec-exmember"),
         Caller("N:deleted-user-token", "N", {"Authorization": T["authspec-deleteduser"]}),
         Caller("N:pending-user-token", "N", {"Authorization": T["authspec-pending"]}),
         Caller("N:revoked-token", "N", {"Authorization": st["revoked_token"]}),
         Caller("N:not-a-jwt", "N", {"Authorization": "not-a-jwt"}),
         Caller("N:jwt-wrong-key", "N", {"Authorization": make_jwt({"jti": jti, "iat": iat}, "authspec-wrong-key")}),
         Caller("N:jwt-alg-none", "N", {"Authorization": make_jwt({"jti": jti, "iat": iat}, "", "none")}),
         Caller("N:jwt-unknown-jti", "N", {"Authorization": make_jwt(
             {"jti": "authspec-unknown-jti-" + "x" * 22, "iat": iat}, key)}),
         Caller("N:jwt-no-jti", "N", {"Authorization": make_jwt({"iat": iat}, key)}),
         Caller("N:jwt-future-iat", "N", {"Authorization": make_jwt({"jti": jti, "iat": now + 10 * 365 * 86400}, key)}),
         Caller("N:jwt-expired", "N", {"Authorization": make_jwt({"jti": jti, "iat": iat, "exp": now - 60}, key)}),
         Caller("N:bare-jti", "N", {"Authorization": jti}),
         Caller("N:bearer-member-token", "N", {"Authorization": "Bearer " + m}),
         Caller("N:member-token-X-CKAN-API-Key", "N", {"X-CKAN-API-Key": m}),
         Caller("N:legacy-apikey-Authorization", "N", {"Authorization": LEGACY_APIKEY}),
         Caller("N:legacy-apikey-X-CKAN-API-Key", "N", {"X-CKAN-API-Key": LEGACY_APIKEY}),
         Caller("N:member-token-?api_key(GET)", "N", qs={"api_key": m}),
         Caller("N:tampered-session-cookie", "N", cookies={"ckan": tamper_cookie(sess)}),
         Caller("N:session-cookie+outsider-token", "N", {"Authorization": outsider}, {"ckan": sess},
                who="authspec-outsider"),
         Caller("N:remember-garbage+member-token", "N", {"Authorization": m}, {"remember_token": "garbage"}),
         Caller("N:member-token+callback", "N", {"Authorization": m}, callback=True, dump_cls="M")]
    return C


# ---------------------------------------------------------------- requests and normalisation
def table_id(state, st):
    ids = st["ids"]
    return {"R1": ids["authspec-public"], "R2": "authspec-alias-pub", "R3": ids["authspec-private"],
            "R4": "authspec-alias-priv", "R5": ids["authspec-draft"], "R6": ids["authspec-draft-private"],
            "R7": ids["authspec-deleted-ds"], "R8": ids["authspec-deleted-ds-private"],
            "R9": ids["authspec-res-deleted"], "R10": ids["authspec-res-removed"], "R11": st["R11"],
            "R12": R12_ID, "R13": "authspec-alias-collide", "R14": st["R14"], "TM": "_table_metadata"}[state]


def request(base, caller, ep, x, data=None):
    h = dict(caller.headers)
    if caller.cookies:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in caller.cookies.items())
    if ep == "dump":
        params = {"limit": 1, **caller.qs}
        if caller.callback:
            params["callback"] = "cb"
        return send(base, "GET", f"/datastore/dump/{urllib.parse.quote(x, safe='')}?{urllib.parse.urlencode(params)}",
                    headers=h)
    action, default = {"search": ("datastore_search", {"resource_id": x, "limit": 1}),
                       "info": ("datastore_info", {"id": x}),
                       "sql": ("datastore_search_sql", {"sql": f'SELECT k FROM "{x}" LIMIT 1'})}[ep]
    data = dict(data if data is not None else default)
    if caller.callback:
        data["callback"] = "cb"
    if caller.qs:  # query-string credential: everything goes in the query string of a GET
        return send(base, "GET", f"/api/3/action/{action}?{urllib.parse.urlencode({**data, **caller.qs})}", headers=h)
    return send(base, "POST", f"/api/3/action/{action}", data, h)


STRICT_HELP = False


def summarize(r, ep):
    """The parts of a response that are compared."""
    d = {"status": r.status, "ctype": r.ctype}
    if r.ctype == "text/html":  # only status + content type are compared; these two are for the spec check
        m = re.search(rb"<title>\s*(.*?)\s*</title>", r.body, re.S)
        d["html_title"] = re.sub(r"\s+", " ", m.group(1).decode("utf-8", "replace")) if m else None
        d["html_not_found"] = b"DataStore resource not found" in r.body
        return d
    if ep != "dump" or r.ctype == "application/json":
        try:
            j = json.loads(r.body)
        except ValueError:
            d["body"] = r.body.decode("utf-8", "replace")
            return d
        if not isinstance(j, dict):
            d["json"] = j
            return d
        if "help" in j:
            u = urllib.parse.urlsplit(str(j["help"]))
            d["help"] = str(j["help"]) if STRICT_HELP else u.path + ("?" + u.query if u.query else "")
        d["success"] = j.get("success")
        if "error" in j:
            err = dict(j["error"]) if isinstance(j["error"], dict) else j["error"]
            if isinstance(err, dict) and err.get("__type") == "Validation Error" and "info" in err:
                # SQL errors: keep the first line of the message, drop statement/params details
                err = {k: ([str(m).split("\n")[0] for m in v] if isinstance(v, list) else v)
                       for k, v in err.items() if k != "info"}
            d["error"] = err
        elif isinstance(j.get("result"), dict):
            res = j["result"]
            if "records" in res:
                d["records"] = res["records"]
            elif ep == "info":
                d["fields"] = res.get("fields")
            else:
                d["result_keys"] = sorted(res)
        return d
    try:
        d["body"] = r.body.decode("utf-8")
    except UnicodeDecodeError:
        d["body_b64"] = base64.b64encode(r.body).decode()
    return d


def comparable(d):
    return {k: v for k, v in d.items() if not k.startswith("html_")}


# ---------------------------------------------------------------- spec expectations (§7.3, §7.4)
def spec_check(caller, state, ep, st, d):
    """Returns a list of problems of CKAN's answer d against the spec."""
    cls = caller.cls_for(ep)
    x = table_id(state, st)
    exp = SPEC[ep][state]["SMN".index(cls)]
    if caller.qs and ep == "search" and exp == 200:  # `api_key` is an unknown parameter: 409 __extras,
        exp = 409                                    # checked after existence and auth (not before them)
    out = []
    if d["status"] != exp:
        return [f"status {d['status']} (spec {exp})"]
    err = d.get("error")
    real = st["ids"]["authspec-private"] if state in ("R4", "R13") else (
        st["ids"]["authspec-public"] if state == "R2" else x)
    want = None
    if ep in ("search", "info") and exp == 403:
        want = {"__type": "Authorization Error",
                "message": f"Access denied: User {caller.who_for(ep)} not authorized to perform resource_show "
                           f"on resource {real}"}
    elif ep == "search" and exp == 404:
        want = {"__type": "Not Found Error", "message": "Not found" if state == "R11" else
                f'Not found: Resource "{x}" was not found.'}
    elif ep == "info" and exp == 404:
        if state == "R11":
            want = {"__type": "Not Found Error", "message": "Not found"}
        elif state in ("R10", "R14"):  # R14: not in the spec's body table; observed on the oracle
            want = {"__type": "Not Found Error", "message": "Not found: Resource was not found."}
        elif state in ("R9", "R12", "TM"):
            want = {"__type": "Not Found Error", "message": f'Not found: Resource/Alias "{x}" was not found.'}
    elif ep == "sql" and exp == 403:
        want = {"__type": "Authorization Error", "message": "Access denied: Not authorized to read resource."}
    elif ep == "sql" and exp == 404:
        want = {"__type": "Not Found Error", "message": "Not found"}
    elif ep == "sql" and exp == 409:
        if not (isinstance(err, dict) and err.get("__type") == "Validation Error"):
            out.append(f"error {err} (spec Validation Error)")
    elif ep == "search" and exp == 409:
        if not (isinstance(err, dict) and err.get("__type") == "Validation Error"):
            out.append(f"error {err} (want Validation Error)")
    if want is not None and err != want:
        out.append(f"error {json.dumps(err)} (spec {json.dumps(want)})")
    if ep in ("search", "info", "sql") and exp != 200 and d.get("ctype") != "application/json":
        out.append(f"content-type {d.get('ctype')}")
    if ep == "dump" and exp in (404, 500):
        if d["ctype"] != "text/html":
            out.append(f"content-type {d['ctype']} (spec text/html)")
        elif exp == 404 and not d.get("html_not_found"):
            out.append("404 page lacks 'DataStore resource not found'")
        elif exp == 500 and "500" not in (d.get("html_title") or ""):
            out.append(f"500 page title {d.get('html_title')!r}")
    if exp == 200 and state != "TM":
        val = "secret-seven" if state == "R14" else "one"
        if ep == "search" and d.get("records") != [{"_id": 1, "k": 7 if state == "R14" else 1, "v": val}]:
            out.append(f"records {d.get('records')}")
        if ep == "sql" and d.get("records") != [{"k": 7 if state == "R14" else 1}]:
            out.append(f"records {d.get('records')}")
        if ep == "dump" and val not in d.get("body", ""):
            out.append(f"dump body {d.get('body', d.get('body_b64', ''))[:80]!r}")
        if ep == "dump" and d["ctype"] != "application/octet-stream":
            out.append(f"dump content-type {d['ctype']}")
    return out


# ---------------------------------------------------------------- §7.4 single checks
def extra_checks(st, with_sql):
    """(label, caller name, endpoint, request body, spec status for CKAN, expected-diff rule or None)."""
    r1, r3 = st["ids"]["authspec-public"], st["ids"]["authspec-private"]
    A, M, S = "N:anonymous", "M:member-token", "S:sysadmin-token"
    ex = [("search limit=abc R3", A, "search", {"resource_id": r3, "limit": "abc"}, 409, None),
          ("search sort=nosuchfield R3", A, "search", {"resource_id": r3, "sort": "nosuchfield"}, 403, None),
          ("search sort=nosuchfield R3", M, "search", {"resource_id": r3, "sort": "nosuchfield"}, 409, None),
          ("search unknown param R3", A, "search", {"resource_id": r3, "nosuchparam": 1}, 403, None),
          ("search unknown param R3", M, "search", {"resource_id": r3, "nosuchparam": 1}, 409, None)]
    if with_sql:
        sq = lambda sql: {"sql": sql}
        for who, cte, tm, join in ((S, 200, 200, 200), (M, 404, 404, 200), (A, 404, 404, 403)):
            ex += [(f"sql CTE over R1", who, "sql", sq(f'WITH t AS (SELECT k FROM "{r1}") SELECT * FROM t'), cte, None),
                   (f"sql subquery R1", who, "sql", sq(f'SELECT * FROM (SELECT k FROM "{r1}") s'), 200, None),
                   ("sql _table_metadata", who, "sql", sq('SELECT name FROM "_table_metadata"'), tm, None),
                   ("sql pg_class", who, "sql", sq("SELECT relname FROM pg_class"), 403, None),
                   ("sql pg_catalog.pg_class", who, "sql", sq("SELECT relname FROM pg_catalog.pg_class"), 403, None),
                   ("sql information_schema", who, "sql", sq("SELECT table_name FROM information_schema.tables"),
                    403, None),
                   ("sql pg_sleep", who, "sql", sq("SELECT pg_sleep(0)"), 403, None),
                   ("sql upper(v) R1", who, "sql", sq(f'SELECT upper(v) FROM "{r1}"'), 200, None),
                   ("sql SELECT 1", who, "sql", sq("SELECT 1"), 200, None),
                   ("sql join R1 R3", who, "sql", sq(f'SELECT a.k FROM "{r1}" a JOIN "{r3}" b ON a.k = b.k'), join,
                    None),
                   ("sql two statements", who, "sql", sq("SELECT 1; SELECT 2"), 409, None),
                   ("sql INSERT", who, "sql", sq(f'INSERT INTO "{r1}" (k) VALUES (9)'), 409, None)]
        ex.append(("sql ts_rewrite R3 (bypass #1)", A, "sql", sq(
            "SELECT ts_rewrite('one'::tsquery, 'SELECT to_tsquery(''simple'', v), to_tsquery(''simple'', ''LEAKED'') "
            f'FROM "{r3}"\') AS x'), 200, "ts_rewrite"))
    return ex


# ---------------------------------------------------------------- ours vs CKAN
def classify(caller, state, ep, c, o):
    """'ok' | 'expected' | 'fail' for CKAN summary c vs ours o."""
    if comparable(c) == comparable(o):
        return "ok", ""
    cls = caller.cls_for(ep)
    bypass = (state == "R14" and ep in ("search", "dump", "sql")) or (state == "R13" and ep == "sql")
    # CKAN lets the caller past its check (by name) and then fails on something else, e.g. an
    # unknown parameter (409 __extras); ours stops at the closed check.
    past_check = c["status"] == 200 or (c["status"] == 409 and "__extras" in (c.get("error") or {}))
    if bypass and cls != "S" and past_check and o["status"] == 404:
        if ep == "dump" and o["ctype"] == "text/html":
            return "expected", "§4.4 name-collision bypass closed (dump 404)"
        if ep != "dump" and o.get("error") == {"__type": "Not Found Error", "message": "Not found"}:
            return "expected", "§4.4 name-collision bypass closed (404 Not found)"
    if ep == "dump" and c["status"] == 500 and o["status"] == 404 and o["ctype"] == "text/html":
        return "expected", "§5 dump 500 -> 404"
    if (state == "R14" and ep == "info" and c["status"] == o["status"] == 404
            and o.get("error") == {"__type": "Not Found Error", "message": "Not found"}):
        # CKAN's resource_show finds the public resource *named* like the orphan, then fails on the id;
        # ours never looks resources up by name, so it answers like any orphan table (R11)
        return "expected", "§4.4 #3 R14 info: orphan 'Not found' instead of CKAN's by-name message"
    return "fail", ""


def flip_checks(fx, servers, st):
    """Membership removal and dataset privacy flips; returns [(server, step, ep, got, want)] mismatches."""
    api = fx.api
    bad = []
    flipper = Caller("flipper-token", "M", {"Authorization": st["tokens"]["authspec-flipper"]})
    anon = Caller("anonymous", "N")
    r3, flip = st["ids"]["authspec-private"], st["ids"]["authspec-flip"]

    def check(step, caller, x, want):
        for sname, base in servers:
            for ep, w in zip(("search", "info", "dump"), want):
                got = request(base, caller, ep, x).status
                print(f"    {step:<38} {sname:<5} {ep:<7} {got} (want {w})" + ("" if got == w else "  <-- MISMATCH"))
                if got != w:
                    bad.append((sname, step, ep, got, w))

    print("== flips (the next request after each change) ==")
    check("flipper member, R3", flipper, r3, (200, 200, 200))
    try:
        api.call("organization_member_delete", {"id": ORG, "username": "authspec-flipper"})
        check("flipper removed from authspec-org, R3", flipper, r3, (403, 403, 404))
    finally:
        api.call("organization_member_create", {"id": ORG, "username": "authspec-flipper", "role": "member"})
    check("flipper re-added, R3", flipper, r3, (200, 200, 200))
    check("authspec-flip public, anonymous", anon, flip, (200, 200, 200))
    try:
        api.call("package_patch", {"id": "authspec-flip", "private": True})
        check("authspec-flip private, anonymous", anon, flip, (403, 403, 404))
    finally:
        api.call("package_patch", {"id": "authspec-flip", "private": False})
    check("authspec-flip public again, anonymous", anon, flip, (200, 200, 200))
    return bad


# ---------------------------------------------------------------- main
def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckan", default="http://127.0.0.1:5000")
    ap.add_argument("--ours")
    ap.add_argument("--sql", action="store_true", help="also datastore_search_sql")
    ap.add_argument("--record", metavar="FILE", help="write CKAN's answers (normalised) as JSON")
    ap.add_argument("--replay", metavar="FILE", help="take CKAN's answers from a --record file (no fixture setup)")
    ap.add_argument("--state", default=os.path.join(repo, "target", "authspec-state.json"))
    ap.add_argument("--ckan-ini", default="/work/shared/oracle/var/ckan.ini")
    ap.add_argument("--sysadmin-token-file", default="/work/shared/oracle/var/token")
    ap.add_argument("--filter", help="regex on 'caller state endpoint'")
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--strict-help", action="store_true", help="compare the whole `help` URL, host included")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every EXPECTED DIFF cell too")
    args = ap.parse_args()
    global STRICT_HELP
    STRICT_HELP = args.strict_help
    t0 = time.time()

    ini = read_ini(args.ckan_ini)
    key = decode_key(ini)
    st = {}
    if os.path.exists(args.state):
        with open(args.state) as f:
            st = json.load(f)
    fx = None
    replay = None
    if args.replay:
        if not args.ours:
            die("--replay needs --ours")
        with open(args.replay) as f:
            replay = json.load(f)
        if not st.get("ids"):
            die(f"--replay needs the state file {args.state}")
    else:
        print("== fixtures ==", flush=True)
        fx = Fixtures(args, ini, st)
        fx.ensure()
        fx.cookies()
        os.makedirs(os.path.dirname(os.path.abspath(args.state)), exist_ok=True)
        with open(args.state + ".tmp", "w") as f:
            json.dump(st, f, indent=1, sort_keys=True)
        os.replace(args.state + ".tmp", args.state)
        os.chmod(args.state, 0o600)
    for s in STATES:
        print(f"  {s:<4} {table_id(s, st)}")
    print(f"  setup {time.time() - t0:.1f} s", flush=True)

    callers = build_callers(st, key)
    eps = ["search", "info", "dump"] + (["sql"] if args.sql else [])
    flt = re.compile(args.filter) if args.filter else None
    cells = [(c, s, e) for e in eps for c in callers for s in STATES
             if not flt or flt.search(f"{c.name} {s} {e}")]
    servers = ([] if replay else [("ckan", args.ckan)]) + ([("ours", args.ours)] if args.ours else [])
    results = {}  # (caller, state, ep) -> {server: summary}
    csrf_retries = [0]
    lock = threading.Lock()

    def prime(base):
        for _ in range(6):
            send(base, "POST", "/api/3/action/status_show", {})

    def run(cell):
        c, s, e = cell
        x = table_id(s, st)
        out = {}
        for sname, base in servers:
            r = request(base, c, e, x)
            tries = 0
            while c.cookie_auth and e != "dump" and r.status == 400 and r.ctype == "text/html" and tries < 5:
                prime(base)  # CKAN 2.12.0 CSRF exemption is per worker process: prime it (spec §1.4)
                tries += 1
                r = request(base, c, e, x)
            with lock:
                csrf_retries[0] += tries
            out[sname] = summarize(r, e)
        if replay:
            out["ckan"] = replay["cells"].get(f"{c.name}|{s}|{e}")
        return cell, out

    t1 = time.time()
    for _sname, base in servers:
        prime(base)
    first = [x for x in cells if not x[0].cookie_auth]
    second = [x for x in cells if x[0].cookie_auth]
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        for batch in (first, second):
            if batch is second:
                for _sname, base in servers:
                    prime(base)
            for cell, out in pool.map(run, batch):
                results[(cell[0].name, cell[1], cell[2])] = out
    t_matrix = time.time() - t1


    # matrices
    spec_bad, fails, expected = [], [], []
    byname = {c.name: c for c in callers}
    for e in eps:
        if not any(k[2] == e for k in results):
            continue
        print(f"\n== {e} ==  (cell: CKAN status; 'ckan>ours' where they differ: ~ expected diff, ! unexpected; "
              f"? = CKAN differs from spec)")
        print(f"{'caller':<34}" + "".join(f"{s:>9}" for s in STATES))
        for c in callers:
            line, any_cell = f"{c.name:<34}", False
            for s in STATES:
                out = results.get((c.name, s, e))
                if out is None:
                    line += f"{'':>9}"
                    continue
                any_cell = True
                ck = out.get("ckan")
                if ck is None:
                    line += f"{'norec':>9}"
                    if "ours" in out:
                        fails.append((c, s, e, None, out["ours"], "no recorded CKAN answer"))
                    continue
                mark = ""
                probs = spec_check(c, s, e, st, ck)
                if probs:
                    spec_bad.append((c.name, s, e, probs))
                    mark += "?"
                cell = str(ck["status"])
                if "ours" in out:
                    kind, why = classify(c, s, e, ck, out["ours"])
                    if kind != "ok":
                        cell = f"{ck['status']}>{out['ours']['status']}" + ("~" if kind == "expected" else "!")
                        (expected if kind == "expected" else fails).append((c, s, e, ck, out["ours"], why))
                line += f"{cell + mark:>9}"
            if any_cell:
                print(line)

    # §7.4 single checks
    extra_bad, extra_rows = [], []
    if not flt:
        print("\n== single checks (spec §7.4) ==")
        for label, cname, e, data, exp, rule in extra_checks(st, args.sql):
            c = byname[cname]
            out = {sname: summarize(request(base, c, e, None, data), e) for sname, base in servers}
            if replay:
                out["ckan"] = replay.get("extras", {}).get(f"{label}|{cname}")
            extra_rows.append((label, cname, out))
            ck, o = out.get("ckan"), out.get("ours")
            line = f"  {label:<32} {cname:<18} ckan {ck and ck['status']} (spec {exp})"
            if ck is None or ck["status"] != exp:
                extra_bad.append((label, cname, ck and ck["status"], exp, ck and ck.get("error")))
                line += "  <-- SPEC MISMATCH"
            if o is not None:
                line += f"  ours {o['status']}"
                if ck is None or comparable(ck) != comparable(o):
                    msg = json.dumps((o.get("error") or {}).get("message", "")) if isinstance(o.get("error"), dict) else ""
                    if (rule == "ts_rewrite" and ck and ck["status"] == 200 and o["status"] == 403
                            and "ts_rewrite" in msg):
                        expected.append((c, label, e, ck, o, "§4.4 #1 ts_rewrite denied"))
                        line += "  EXPECTED DIFF"
                    else:
                        fails.append((c, label, e, ck, o, ""))
                        line += "  <-- DIFF"
            print(line)

    flip_bad = []
    if not args.no_flip and fx and not flt:
        print()
        flip_bad = flip_checks(fx, servers, st)

    if args.record and not replay:
        rec = {"ckan": args.ckan, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "tables": {s: table_id(s, st) for s in STATES},
               "cells": {f"{k[0]}|{k[1]}|{k[2]}": v["ckan"] for k, v in results.items()},
               "extras": {f"{label}|{cname}": out["ckan"] for label, cname, out in extra_rows}}
        with open(args.record, "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
        print(f"\nrecorded {len(rec['cells'])} + {len(rec['extras'])} CKAN answers to {args.record}")

    print("\n== CKAN vs spec (ckan-auth.md §7.3/§7.4) ==")
    for label, cname, got, exp, err in extra_bad:
        print(f"  SPEC MISMATCH {label} {cname}: {got} (spec {exp}) {json.dumps(err)[:200]}")
    for name, s, e, probs in spec_bad:
        print(f"  SPEC MISMATCH {name} {s} {e}: {'; '.join(probs)}")
    for sname, step, ep, got, want in flip_bad:
        if sname == "ckan":
            print(f"  SPEC MISMATCH flip '{step}' {ep}: {got} (want {want})")
    nspec = len(spec_bad) + len(extra_bad) + sum(1 for b in flip_bad if b[0] == "ckan")
    problems = st.get("fixture_problems")
    print(f"  {nspec} mismatch(es) in {len(results)} cells + {len(extra_rows)} single checks"
          + (f"; FIXTURE PROBLEMS: {problems}" if problems else ""))
    nfail = len(fails) + sum(1 for b in flip_bad if b[0] == "ours")
    if args.ours:
        print("\n== ours vs CKAN ==")
        for c, s, e, ck, o, why in expected:
            if args.verbose:
                print(f"  EXPECTED DIFF {c.name} {s} {e}: {ck['status']} -> {o['status']} ({why})")
        whys = {}
        for *_, why in expected:
            whys[why] = whys.get(why, 0) + 1
        for why, n in sorted(whys.items()):
            print(f"  EXPECTED DIFF x{n}: {why}")
        for i, (c, s, e, ck, o, why) in enumerate(fails):
            if i == 40 and not args.verbose:
                print(f"  ... {len(fails) - 40} more DIFF cells (-v shows all; the matrices above mark them with !)")
                break
            print(f"  DIFF {c.name} {s} {e} ({table_id(s, st) if s in STATES else 'single check'}) {why}")
            print(f"     ckan: {json.dumps(comparable(ck) if ck else None)[:400]}")
            print(f"     ours: {json.dumps(comparable(o))[:400]}")
        for sname, step, ep, got, want in flip_bad:
            if sname == "ours":
                print(f"  DIFF flip '{step}' {ep}: ours {got} (want {want})")
        ncells = len(results) + len(extra_rows)
        nflip = nfail - len(fails)
        print(f"  {ncells} cells: {ncells - len(expected) - len(fails)} same, {len(expected)} expected diffs, "
              f"{len(fails)} unexpected" + (f"; {nflip} flip check(s) failed" if nflip else ""))
    print(f"\nmatrix {len(results)} cells x {len(servers) or 1} server(s) in {t_matrix:.1f} s "
          f"(CSRF retries {csrf_retries[0]}), total {time.time() - t0:.1f} s")
    sys.exit((1 if nfail else 0) | (2 if nspec else 0))


if __name__ == "__main__":
    main()
