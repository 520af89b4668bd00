#!/usr/bin/env bash
# RSS of the facade before and after a storm of connections: N clients (default 5,000) connect
# at once, each sends one request and keeps its connection open until all have answered, then
# all close. What the process keeps afterwards is memory it did not give back.
#
# Usage: bash bench/storm.sh        (after cargo build --release -p strangler -p strangler-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_CONNECTIONS:-5000}
UP=127.0.0.1:18300
PORT=18301
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

target/release/bench-upstream "$UP" & pids+=($!)
STRANGLER_LOG_LEVEL=warn STRANGLER_CATALOG_URL="sqlite://$work/c.db" STRANGLER_SHUTDOWN_DRAIN_DELAY=0s \
  target/release/strangler serve --legacy "http://$UP" --listen "127.0.0.1:$PORT" \
  --admin 127.0.0.1:18302 --workers 2 & pids+=($!)
sp=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/hello" && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$sp/status"; }
sleep 1
echo "idle RSS: $(rss) KiB"
python3 - "$PORT" "$N" "$sp" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
ok = 0
for s in socks:
    data = b""
    while b"hello, world!" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200")
print(f"{ok} of {n} answered")
rss = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0]
print(f"RSS with {n} connections open: {rss} KiB")
for s in socks:
    s.close()
PY
sleep 0.5
echo "RSS after they closed: $(rss) KiB"
sleep 3
echo "RSS 3 s later: $(rss) KiB"
