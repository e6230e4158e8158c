#!/usr/bin/env python3
"""Replays recorded golden requests (NAME.request) against a server and compares status,
Content-Type and body with the recording (help host and db_size normalised).

usage: scripts/replay_goldens.py BASE DIR [DIR...]   (development aid; the Rust tests do the same)
"""
import re, sys, urllib.request, urllib.error

def norm(b):
    s = b.decode('utf-8', 'replace')
    s = re.sub(r'"help": "https?://[^/"]*', '"help": "HOST', s)
    s = re.sub(r'"db_size": \d+', '"db_size": N', s)
    # CKAN's "Invalid query" carries the SQL in `info`; we answer without it on purpose.
    s = re.sub(r'"info": \{"statement".*\}, "__type": "Validation Error"', '"info": INFO, "__type": "Validation Error"', s)
    s = re.sub(r'"info": \{"orig".*\}, "__type": "Validation Error"', '"info": INFO, "__type": "Validation Error"', s)
    # datastore_search_sql errors: CKAN's message goes on with PostgreSQL's context lines and
    # the statement ("\nLINE 1: ..."); ours stops at PostgreSQL's message.
    s = re.sub(r'("query": \["\(psycopg2\.errors\.\w+\) [^"\\]*(?:\\"[^"\\]*)*?)\\n[^"]*(?:\\"[^"]*)*?"\]', r'\1"]', s)
    return s

def main():
    base = sys.argv[1].rstrip('/')
    ok = bad = 0
    import glob, os
    for d in sys.argv[2:]:
        for req in sorted(glob.glob(os.path.join(d, '*.request'))):
            name = req[:-8]
            parts = open(req, encoding='utf-8').read().rstrip('\n').split('\t')
            method, path, body = parts[0], parts[1], parts[2] if len(parts) > 2 else ''
            ctype = parts[3] if len(parts) > 3 else ('application/json' if method == 'POST' else None)
            bodyfile = [f for f in glob.glob(name + '.*') if not f.endswith(('.request', '.meta', '.headers'))]
            want = open(bodyfile[0], 'rb').read() if bodyfile else b''
            meta = dict(l.split('=', 1) for l in open(name + '.meta').read().splitlines() if '=' in l)
            path_q = path.replace('"', '%22').replace('<', '%3C').replace('>', '%3E').replace(' ', '%20')
            r = urllib.request.Request(base + path_q, data=body.encode() if method == 'POST' else None, method=method)
            if ctype:
                r.add_header('Content-Type', ctype)
            try:
                resp = urllib.request.urlopen(r)
                status, got, ct = resp.status, resp.read(), resp.headers.get('Content-Type', '')
            except urllib.error.HTTPError as e:
                status, got, ct = e.code, e.read(), e.headers.get('Content-Type', '')
            good = str(status) == meta.get('status') and norm(got) == norm(want)
            if meta.get('status') == '200' or meta.get('content_type', '').startswith('application/json'):
                good = good and ct == meta.get('content_type')
            if good:
                ok += 1
            else:
                bad += 1
                print(f"DIFF {os.path.basename(name)}: status {status} want {meta.get('status')}")
                print("  want:", norm(want)[:400])
                print("  got: ", norm(got)[:400])
    print(f"{ok} passed, {bad} failed")

main()
