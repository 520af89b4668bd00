#!/usr/bin/env bash
# Memory per idle keep-alive connection: the facade's RSS with no client connection, then with
# N HTTP/1.1 connections that each made one request through it and stay open, idle.
#
#   bash bench/idle.sh            # N = 8000 (the facade fits 2 fds per client connection into
#                                 # the open-file limit: 20,000 here), reported per 10,000
#   BENCH_IDLE_CONNECTIONS=20000 bash bench/idle.sh
#   BENCH_SKIP_BUILD=1            use the existing target/release binaries
#
# The facade runs `--workers 1` on CPU 1, the upstream and the client on CPU 0. Each idle
# connection also holds one pooled upstream connection only while a request is in flight, so
# what grows is the client side: its socket, its connection task and its buffers.
set -euo pipefail

N="${BENCH_IDLE_CONNECTIONS:-8000}"
UPSTREAM_ADDR=127.0.0.1:18000
FACADE_ADDR=127.0.0.1:18081
ADMIN_ADDR=127.0.0.1:19091
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"
if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
    (cd "$REPO_ROOT" && cargo build --release -p strangler -p strangler-bench)
fi

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

taskset -c 0 "$REPO_ROOT/target/release/bench-upstream" "$UPSTREAM_ADDR" &
PIDS+=($!)
STRANGLER_CATALOG_URL="sqlite://$WORK/catalog.db" STRANGLER_LOG_LEVEL=warn \
    STRANGLER_LIMITS_MAX_CONNECTIONS=$((N + 1000)) \
    taskset -c 1 "$REPO_ROOT/target/release/strangler" serve --legacy "http://$UPSTREAM_ADDR" \
    --listen "$FACADE_ADDR" --admin "$ADMIN_ADDR" --workers 1 >"$WORK/strangler.log" 2>&1 &
FACADE=$!
PIDS+=("$FACADE")
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://$FACADE_ADDR/hello" 2>/dev/null && break
    sleep 0.1
done
# A little traffic first, so that the steady state (pools, buffers) is what is compared.
for _ in $(seq 200); do curl -fsS -o /dev/null "http://$FACADE_ADDR/hello"; done
before=$(rss_kib "$FACADE")

taskset -c 0 python3 - "$FACADE_ADDR" "$N" "$WORK/ready" <<'PY' &
import asyncio, sys
host, port = sys.argv[1].split(":")
n, ready = int(sys.argv[2]), sys.argv[3]
async def one(held):
    r, w = await asyncio.open_connection(host, int(port))
    w.write(b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n")
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    await r.readexactly(length)
    held.append((r, w))
async def main():
    held, sem = [], asyncio.Semaphore(500)
    async def limited():
        async with sem:
            await one(held)
    await asyncio.gather(*(limited() for _ in range(n)))
    open(ready, "w").write(str(len(held)))
    await asyncio.sleep(3600)
asyncio.run(main())
PY
CLIENT=$!
PIDS+=("$CLIENT")
for _ in $(seq 600); do [[ -f "$WORK/ready" ]] && break; sleep 0.1; done
[[ -f "$WORK/ready" ]] || { echo "error: the connections were not all made" >&2; exit 1; }
sleep 1
held=$(cat "$WORK/ready")
after=$(rss_kib "$FACADE")
kill "$CLIENT" 2>/dev/null || true
sleep 2
closed=$(rss_kib "$FACADE")
echo "idle keep-alive connections held: $held"
echo "facade RSS: $((before / 1024)) MiB before, $((after / 1024)) MiB with them, $((closed / 1024)) MiB after they closed"
awk -v b="$before" -v a="$after" -v n="$held" 'BEGIN { printf "per 10,000 idle connections: %.1f MiB (%.2f KiB each)\n", (a - b) / n * 10000 / 1024, (a - b) / n }'
