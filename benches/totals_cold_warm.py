#!/usr/bin/env python3
"""Totals cache: cold (first request of a filter) vs warm (the same filter again), CKAN vs ours.

Sequential (concurrency 1), Python stdlib only, bounded in time. For each mode:

  cold  N requests, each with a filter the server has never seen: the filter of the
        `filter_cat` workload ({"category": "north"}) written as a list with one extra value
        that exists nowhere ("north" plus "zz-<run nonce>-<i>"). Every request therefore has
        the same answer and the same PostgreSQL cost as filter_cat (IN over 1M rows, 124589
        matches on the seed=1 table), but a cache key nobody has used before, so our server
        must count. CKAN always counts.
  warm  N repeats of one filter (the first cold filter, already counted once).

Mode `q` does the same with the `q_word` workload ({"q": "river"}) plus a category filter that
lists all categories and the nonce value (every row passes it).

The two servers alternate per request (A,B then B,A), so drift hits both equally. Each request
uses a new connection (gunicorn's sync workers close it anyway). Times are wall ms from sending
the request to the last body byte. Bodies are compared after normalising the `help` host:
`total` must be equal; for `filter` the whole body is compared (q's rank ties are not unique).

  ./totals_cold_warm.py --a http://127.0.0.1:5000 --b http://127.0.0.1:8080 \
      --resource 33333333-3333-4333-8333-333333333333 -n 30 --modes filter,q --q-n 10 \
      [--json out.json] [--max-seconds 120]

With --metrics (default: B's /metrics) the totals-cache counters are read before and after
each phase, so the hits/misses of B are shown next to the timings.
"""
import argparse
import http.client
import json
import os
import re
import statistics
import sys
import time
import urllib.parse

CATEGORIES = None  # filled from the server (datastore_search distinct) on start


def post(base, path, body, timeout=300):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    data = json.dumps(body).encode()
    t0 = time.perf_counter()
    conn.request("POST", u.path.rstrip("/") + path, body=data,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    raw = r.read()
    dt = (time.perf_counter() - t0) * 1000.0
    conn.close()
    return r.status, raw, dt


def get_text(url):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
    conn.request("GET", u.path or "/")
    r = conn.getresponse()
    t = r.read().decode()
    conn.close()
    return t


def metrics(url):
    if not url:
        return {}
    out = {}
    try:
        for line in get_text(url).splitlines():
            m = re.match(r"^ckan_datastore_totals_cache_(\w+?)(?:_total)? (\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
    except OSError:
        return {}
    return out


def norm(raw):
    return re.sub(rb'"help": "https?://[^/"]+', b'"help": "HOST', raw)


def summarise(ms):
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms),
            "min_ms": min(ms), "max_ms": max(ms),
            "req_s": len(ms) / (sum(ms) / 1000.0)}


def body_for(mode, rid, extra):
    if mode == "filter":
        return {"resource_id": rid, "filters": {"category": ["north", extra]}}
    return {"resource_id": rid, "q": "river",
            "filters": {"category": CATEGORIES + [extra]}}


def run_phase(a, b, bodies, deadline, mode, cmp_bodies):
    times = {a: [], b: []}
    mism = []
    totals = set()
    for i, body in enumerate(bodies):
        if time.monotonic() > deadline:
            print("  (time bound reached after %d requests)" % i, file=sys.stderr)
            break
        order = (a, b) if i % 2 == 0 else (b, a)
        res = {}
        for srv in order:
            st, raw, dt = post(srv, "/api/3/action/datastore_search", body)
            times[srv].append(dt)
            res[srv] = (st, raw)
        (sa, ra), (sb, rb) = res[a], res[b]
        ta = json.loads(ra).get("result", {}).get("total") if sa == 200 else None
        tb = json.loads(rb).get("result", {}).get("total") if sb == 200 else None
        totals.add(tb)
        if sa != sb or ta != tb or (cmp_bodies and norm(ra) != norm(rb)):
            mism.append({"i": i, "status": [sa, sb], "total": [ta, tb]})
    return times, mism, sorted(t for t in totals if t is not None)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default="http://127.0.0.1:5000", help="CKAN")
    ap.add_argument("--b", default="http://127.0.0.1:8080", help="ours")
    ap.add_argument("--label-a", default="ckan")
    ap.add_argument("--label-b", default="rust")
    ap.add_argument("--resource", required=True)
    ap.add_argument("-n", type=int, default=30, help="requests per phase (filter mode)")
    ap.add_argument("--q-n", type=int, default=10, help="requests per phase (q mode)")
    ap.add_argument("--modes", default="filter,q")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="bound per phase")
    ap.add_argument("--metrics", default=None, help="B's /metrics URL (default: B + /metrics)")
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()
    murl = a.metrics if a.metrics is not None else a.b.rstrip("/") + "/metrics"

    global CATEGORIES
    st, raw, _ = post(a.a, "/api/3/action/datastore_search",
                      {"resource_id": a.resource, "distinct": True, "fields": "category",
                       "sort": "category", "limit": 1000, "include_total": False})
    CATEGORIES = [r["category"] for r in json.loads(raw)["result"]["records"]]

    nonce = "%x%x" % (os.getpid(), int(time.time() * 1000))
    lab = {a.a: a.label_a, a.b: a.label_b}
    out = {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg": os.getloadavg(), "nonce": nonce, "modes": {}}
    print("# %s  A=%s (%s)  B=%s (%s)  resource=%s  loadavg=%.2f %.2f %.2f  nonce=%s"
          % (out["time_utc"], a.a, a.label_a, a.b, a.label_b, a.resource,
             *out["loadavg"], nonce))
    print("%-7s %-5s %-5s %4s %9s %9s %9s %9s %8s   %s"
          % ("mode", "phase", "side", "n", "p50 ms", "mean ms", "min ms", "max ms", "req/s",
             "B cache counters (delta)"))
    for mode in [m for m in a.modes.split(",") if m]:
        n = a.n if mode == "filter" else a.q_n
        cold_bodies = [body_for(mode, a.resource, "zz-%s-%s-%d" % (nonce, mode, i))
                       for i in range(n)]
        warm_bodies = [cold_bodies[0]] * n
        res = {}
        for phase, bodies in (("cold", cold_bodies), ("warm", warm_bodies)):
            m0 = metrics(murl)
            times, mism, totals = run_phase(a.a, a.b, bodies,
                                            time.monotonic() + a.max_seconds,
                                            mode, mode == "filter")
            m1 = metrics(murl)
            delta = {k: m1[k] - m0.get(k, 0) for k in m1 if k != "entries"}
            s = {lab[srv]: summarise(ts) for srv, ts in times.items()}
            res[phase] = {"sides": s, "mismatches": mism, "b_totals": totals,
                          "b_metrics_delta": delta, "b_metrics_after": m1}
            for srv in (a.a, a.b):
                x = s[lab[srv]]
                extra = ""
                if srv == a.b:
                    extra = " ".join("%s=%+d" % (k, v) for k, v in sorted(delta.items()))
                print("%-7s %-5s %-5s %4d %9.1f %9.1f %9.1f %9.1f %8.1f   %s"
                      % (mode, phase, lab[srv], x["n"], x["p50_ms"], x["mean_ms"],
                         x["min_ms"], x["max_ms"], x["req_s"], extra))
            sa, sb = s[a.label_a], s[a.label_b]
            r = {"req_s_b_over_a": sb["req_s"] / sa["req_s"],
                 "p50_b_over_a": sb["p50_ms"] / sa["p50_ms"]}
            res[phase]["ratio"] = r
            print("%-7s %-5s  B/A: req/s x%.2f  p50 x%.3f  mismatches=%d  totals(B)=%s"
                  % (mode, phase, r["req_s_b_over_a"], r["p50_b_over_a"], len(mism), totals))
        out["modes"][mode] = res
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
