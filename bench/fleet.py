#!/usr/bin/env python3
"""A replica fleet on one PostgreSQL catalog: N facades on loopback, R routes, steady traffic.

For each (replicas, routes) asked for it reports
  - the catalog's write load from the replicas' telemetry flushes: transactions and rows
    written per second (pg_stat_database / pg_stat_user_tables deltas) and PostgreSQL's CPU
    (user+system ticks of its processes) over the measured window;
  - change propagation: for 10 changes made through one replica's API, how long until each
    replica serves the new catalog version (its /metrics `strangler_catalog_version`), p50 and
    max over all replicas and changes;
  - autopilot lease failover (first configuration only): the evaluating replica is killed
    (SIGKILL) and the time until another one evaluates is measured.

    python3 bench/fleet.py                       # 2, 4 and 8 replicas × 1,000 routes; 8 × 100
    python3 bench/fleet.py 8x1000 16x1000        # chosen configurations
    FLEET_SECONDS=60 FLEET_RATE=100 python3 bench/fleet.py   (the defaults; route counts are
                                                             written once a minute, so windows
                                                             are whole minutes)

FLEET_SIMULATED=92 adds 92 replicas that only hand in counts (see `Simulated`): with 8 real ones,
the catalog's write load of a 100-replica fleet, which this machine cannot run.

FLEET_BIN=path/to/strangler measures another build (the "before" rows of bench/README.md were
an earlier commit's release binary). Needs target/release/strangler and target/release/bench-upstream (cargo build --release -p
strangler -p strangler-bench) and PostgreSQL at 127.0.0.1:5432 (user postgres, trust); it
makes and drops the database strangler_fleet. Load comes from this script (one thread per
replica, keep-alive, each cycling through every route), FLEET_RATE requests a second per
replica (default 100). The machine has 2 cores: absolute figures are small; the slopes are what
the bench is for.
"""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("FLEET_BIN", os.path.join(ROOT, "target/release/strangler"))
UPSTREAM = os.path.join(ROOT, "target/release/bench-upstream")
PG = "postgres://postgres@127.0.0.1:5432"
DB = "strangler_fleet"
SECONDS = float(os.environ.get("FLEET_SECONDS", "60"))
RATE = float(os.environ.get("FLEET_RATE", "100"))
TOKEN = "fleet-operator-token-000000000001"
SIMULATED = int(os.environ.get("FLEET_SIMULATED", "0"))
FLUSH_S = 2.0
CONTEXTS = 10


def psql(sql, db="test"):
    out = subprocess.run(["psql", f"{PG}/{db}", "-tAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, token=None, timeout=5):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def call(url, method, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def version_of(admin):
    for line in get(f"http://{admin}/metrics").splitlines():
        if line.startswith("strangler_catalog_version "):
            return int(float(line.split()[1]))
    return -1


def pg_ticks():
    """User+system clock ticks of every postgres process."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("postgres"):
            total += int(fields[11]) + int(fields[12])
    return total


# Every table the telemetry flush writes: the rollups, and the batches replicas hand in and the
# merge's bookkeeping row. Rows inserted, updated and deleted all count.
TABLES = (
    "('traffic_minutes','traffic_hours','path_traffic','path_traffic_days','path_last_seen',"
    "'traffic_batches','traffic_merges')"
)


def per_table():
    out = psql(
        "select relname, n_tup_ins + n_tup_upd + n_tup_del from pg_stat_user_tables "
        f"where relname in {TABLES} order by 1",
        DB,
    )
    return dict(line.split("|") for line in out.splitlines())


def pg_counters():
    xact = int(psql(f"select xact_commit from pg_stat_database where datname = '{DB}'"))
    wal = int(psql("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"))
    rows = psql(
        "select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) from pg_stat_user_tables "
        f"where relname in {TABLES}",
        DB,
    )
    return xact, int(rows), wal


def config(path, upstream, routes):
    per = routes // CONTEXTS
    with open(path, "w") as f:
        f.write(f'[legacy]\nurl = "http://{upstream}"\n\n')
        f.write(f'[[services]]\nname = "svc"\nurls = ["http://{upstream}"]\n\n')
        for c in range(CONTEXTS):
            f.write(f'[[contexts]]\nname = "ctx{c}"\ntarget = "svc"\nstate = "canary"\nweight = 5000\n')
            rs = ", ".join(f'{{ methods = ["GET"], path = "/c{c}/r{r}/{{id}}" }}' for r in range(per))
            f.write(f"routes = [{rs}]\n\n")
    return [f"/c{c}/r{r}/1" for c in range(CONTEXTS) for r in range(per)]


class Simulated(threading.Thread):
    """Replicas that only hand in counts, as a real replica's flush does with this load: every
    2 s one `traffic` batch with each (context, side) pair of the minute, and once a minute one
    `paths` batch with each (route, side) pair (every route is busy) — in the format
    `store/src/staging.rs` reads, through one psql session. The real replicas merge them, so
    the rollups' writes are those of a fleet of real + simulated replicas. Each simulated
    replica starts at its own phase, as replicas started at different times do."""

    def __init__(self, n, routes):
        super().__init__(daemon=True)
        self.n, self.routes, self.stop, self.batches = n, routes, False, 0

    def traffic_body(self, minute):
        buckets = [0] * 14
        buckets[2] = 2
        rows = [{"minute": minute, "context": f"ctx{c}", "side": side, "requests": 2, "errors": 0,
                 "latency_us": 5000, "buckets": buckets, "fallbacks": 0}
                for c in range(CONTEXTS) for side in ("legacy", "new")]
        return len(rows), json.dumps({"v": 1, "rows": rows})

    def paths_body(self, minute):
        rows = [{"minute": minute, "context": ctx, "path": rid, "side": side, "requests": 6,
                 "errors": 0, "latency_us": 15000}
                for ctx, rid in self.routes for side in ("legacy", "new")]
        return len(rows), json.dumps({"v": 1, "rows": rows})

    def run(self):
        sql = subprocess.Popen(["psql", f"{PG}/{DB}", "-q", "-v", "ON_ERROR_STOP=1"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        start = time.monotonic()
        # (when, replica, kind): each replica's next hand-in of each kind.
        due = [(start + FLUSH_S * i / self.n, i, "traffic") for i in range(self.n)]
        due += [(start + 60.0 * i / self.n, i, "paths") for i in range(self.n)]
        while not self.stop:
            due.sort()
            at, i, kind = due.pop(0)
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            minute = int(time.time() // 60)
            pairs, body = (self.traffic_body if kind == "traffic" else self.paths_body)(minute)
            sql.stdin.write(
                f"INSERT INTO traffic_batches (kind, pairs, body, created_ms) VALUES "
                f"('{kind}', {pairs}, $j${body}$j$, {int(time.time() * 1000)});\n")
            sql.stdin.flush()
            self.batches += 1
            due.append((at + (FLUSH_S if kind == "traffic" else 60.0), i, kind))
        sql.stdin.close()
        sql.wait()


class Load(threading.Thread):
    def __init__(self, addr, paths):
        super().__init__(daemon=True)
        self.addr, self.paths, self.stop, self.done, self.failed = addr, paths, False, 0, 0

    def run(self):
        host, port = self.addr.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        i, start = 0, time.monotonic()
        while not self.stop:
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                self.done += 1 if r.status < 500 else 0
                self.failed += 0 if r.status < 500 else 1
            except (OSError, http.client.HTTPException):
                self.failed += 1
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            ahead = i / RATE - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def run(replicas, routes, failover):
    psql(f"drop database if exists {DB} with (force)")
    psql(f"create database {DB}")
    work = tempfile.mkdtemp(prefix="strangler-fleet-")
    up_port = free_port()
    procs = []
    upstream = subprocess.Popen([UPSTREAM, f"127.0.0.1:{up_port}"], stdout=subprocess.DEVNULL)
    procs.append(upstream)
    cfg = os.path.join(work, "fleet.toml")
    paths = config(cfg, f"127.0.0.1:{up_port}", routes)
    env = dict(os.environ, STRANGLER_CATALOG_URL=f"{PG}/{DB}", STRANGLER_AUTH_OPERATOR_TOKEN=TOKEN,
               STRANGLER_AUTH_VIEWER_TOKEN=TOKEN.replace("operator", "viewer__"),
               STRANGLER_LOG_LEVEL="warn", STRANGLER_SHUTDOWN_DRAIN_DELAY="0s")
    subprocess.run([BIN, "import", "--config", cfg], env=env, check=True, stdout=subprocess.DEVNULL)
    nodes = []
    for i in range(replicas):
        listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        e = dict(env, STRANGLER_SHADOW_WAL_DIR=os.path.join(work, f"wal{i}"))
        p = subprocess.Popen([BIN, "serve", "--config", cfg, "--listen", listen, "--admin", admin,
                              "--workers", "1"], env=e, stderr=subprocess.DEVNULL)
        procs.append(p)
        nodes.append({"listen": listen, "admin": admin, "proc": p})
    try:
        for n in nodes:
            for _ in range(400):
                try:
                    get(f"http://{n['admin']}/readyz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
        loads = [Load(n["listen"], paths) for n in nodes]
        for l in loads:
            l.start()
        sim = None
        if SIMULATED:
            listed = json.loads(get(f"http://{nodes[0]['admin']}/api/v1/routes", TOKEN))
            sim = Simulated(SIMULATED, [(r["context"], r["id"]) for r in listed["items"]])
            sim.start()
        time.sleep(3)  # every route seen once before measuring
        x0, r0, w0 = pg_counters()
        tables0 = per_table()
        t0, c0 = time.monotonic(), pg_ticks()
        time.sleep(SECONDS)
        x1, r1, w1 = pg_counters()
        tables1 = per_table()
        t1, c1 = time.monotonic(), pg_ticks()
        served = sum(l.done for l in loads)
        elapsed = t1 - t0
        hz = os.sysconf("SC_CLK_TCK")
        waiting = int(psql("select count(*) from traffic_batches", DB))
        result = {
            "replicas": replicas, "routes": routes, "waiting": waiting,
            "tx_per_s": (x1 - x0) / elapsed, "rows_per_s": (r1 - r0) / elapsed,
            "wal_kib_per_s": (w1 - w0) / 1024 / elapsed,
            "tables": {t: round((int(tables1[t]) - int(tables0.get(t, 0))) / elapsed) for t in tables1},
            "pg_cpu_percent": 100.0 * (c1 - c0) / hz / elapsed,
            "requests": served, "failed": sum(l.failed for l in loads),
        }
        # Propagation: changes through replica 0's API, seen by every replica.
        delays = []
        admin0 = nodes[0]["admin"]
        for k in range(10):
            cat = json.loads(get(f"http://{admin0}/api/v1/catalog", TOKEN))
            start = time.monotonic()
            call(f"http://{admin0}/api/v1/contexts/ctx0/weight", "POST",
                 {"weight": 4000 + k, "reason": "fleet bench", "base_version": cat["version"]})
            want = cat["version"] + 1
            pending = {n["admin"] for n in nodes}
            while pending:
                for a in list(pending):
                    if version_of(a) >= want:
                        delays.append(time.monotonic() - start)
                        pending.discard(a)
                if time.monotonic() - start > 30:
                    raise SystemExit(f"a change did not reach {pending} in 30 s")
                time.sleep(0.005)
        result["propagation_p50_ms"] = 1000 * statistics.median(delays)
        result["propagation_max_ms"] = 1000 * max(delays)
        if failover:
            leader = None
            for _ in range(200):
                for n in nodes:
                    if json.loads(get(f"http://{n['admin']}/api/v1/autopilot", TOKEN)).get("evaluating"):
                        leader = n
                if leader:
                    break
                time.sleep(0.1)
            if leader:
                killed = time.monotonic()
                leader["proc"].send_signal(signal.SIGKILL)
                leader["proc"].wait()
                others = [n for n in nodes if n is not leader]
                while True:
                    if any(json.loads(get(f"http://{n['admin']}/api/v1/autopilot", TOKEN)).get("evaluating")
                           for n in others):
                        break
                    if time.monotonic() - killed > 60:
                        raise SystemExit("no replica took the autopilot's lease in 60 s")
                    time.sleep(0.05)
                result["failover_s"] = time.monotonic() - killed
        for l in loads:
            l.stop = True
        if sim:
            sim.stop = True
        return result
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        psql(f"drop database if exists {DB} with (force)")


def main():
    wanted = sys.argv[1:] or ["2x1000", "4x1000", "8x1000", "8x100"]
    if SIMULATED:
        print(f"(+ {SIMULATED} simulated replicas handing in counts)")
    print("| replicas | routes | transactions/s (reads too) | traffic rows written/s | WAL KiB/s | PostgreSQL CPU % | propagation p50 / max ms | lease failover s | requests (failed) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, w in enumerate(wanted):
        replicas, routes = (int(x) for x in w.split("x"))
        r = run(replicas, routes, failover=(i == 0))
        print(f"| {r['replicas']} | {r['routes']} | {r['tx_per_s']:.1f} | {r['rows_per_s']:.0f} | {r['wal_kib_per_s']:.0f} | "
              f"{r['pg_cpu_percent']:.1f} | {r['propagation_p50_ms']:.0f} / {r['propagation_max_ms']:.0f} | "
              f"{r.get('failover_s', float('nan')):.1f} | {r['requests']} ({r['failed']}) |", flush=True)
        print(f"<!-- rows/s by table: {r['tables']}; batches waiting at the end: {r['waiting']} -->", flush=True)


if __name__ == "__main__":
    main()
