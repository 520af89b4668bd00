#!/usr/bin/env bash
# Userspace instructions per proxied request, counted by valgrind's callgrind: repeatable for
# the same binary and inputs whatever else the machine is doing, unlike requests per second.
# Counts the facade and nginx (one worker, same upstream) with the same load, and subtracts
# each one's start-up and shutdown (a run with no requests).
#
# Usage: bash bench/instructions.sh        (after cargo build --release -p strangler -p strangler-bench)
# BENCH_STRANGLER_BIN names another build of the facade to count (e.g. bench/pgo.sh's).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light; }

BIN=${BENCH_STRANGLER_BIN:-target/release/strangler}
UP=127.0.0.1:18100
PORT=18101
SECONDS_LOAD=${BENCH_SECONDS:-8}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

target/release/bench-upstream "$UP" & pids+=($!)
sleep 0.3

wait_port() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/hello" && return 0; sleep 0.1; done; return 1; }

# total_ir FILE: the summary line of a callgrind output
total_ir() { awk '/^summary:/{print $2}' "$1"; }

# measure NAME REQUESTS_FLAG -- command...: runs the command under callgrind, loads it (or not),
# stops it with SIGTERM, prints "Ir requests".
measure() {
  local name=$1 load=$2; shift 2
  local out="$work/$name-$load.cg"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$work/$name.log" 2>&1 &
  local vg=$!
  pids+=($vg)
  wait_port || { echo "$name did not start" >&2; cat "$work/$name.log" >&2; exit 1; }
  local reqs=1
  if [ "$load" = yes ]; then
    reqs=$(wrk -t1 -c8 -d"${SECONDS_LOAD}s" ${WRK_SCRIPT:+-s "$WRK_SCRIPT"} "http://127.0.0.1:$PORT/hello" | awk '/requests in/{print $1}')
  else
    curl -s -o /dev/null "http://127.0.0.1:$PORT/hello"
  fi
  kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
  echo "$(total_ir "$out") $reqs"
}

per_request() {
  local name=$1; shift
  read -r base_ir base_n < <(measure "$name" no "$@")
  read -r load_ir load_n < <(measure "$name" yes "$@")
  awk -v a="$base_ir" -v b="$load_ir" -v na="$base_n" -v nb="$load_n" -v name="$name" \
    'BEGIN { printf "%-10s %12.0f instructions/request  (%d requests)\n", name, (b-a)/(nb-na), nb-na }'
}

export STRANGLER_LOG_LEVEL=warn
export STRANGLER_CATALOG_URL="sqlite://$work/empty.db"
per_request strangler "$BIN" serve --legacy "http://$UP" \
  --listen "127.0.0.1:$PORT" --admin 127.0.0.1:18102 --workers 1
# The same with a browser's request head (14 fields; bench/browser.lua).
WRK_SCRIPT=bench/browser.lua per_request browser "$BIN" serve \
  --legacy "http://$UP" --listen "127.0.0.1:$PORT" --admin 127.0.0.1:18102 --workers 1

# /hello in a migrated context, and the head-only translator (HEAD_ONLY).
source bench/hello-catalog.sh
for variant in migrated translated; do
  hello_catalog "$UP" "$([ "$variant" = translated ] && printf '%s' "$HEAD_ONLY")" >"$work/$variant.toml"
  STRANGLER_CATALOG_URL="sqlite://$work/$variant.db" "$BIN" import \
    --config "$work/$variant.toml" >/dev/null
  STRANGLER_CATALOG_URL="sqlite://$work/$variant.db" per_request "$variant" \
    "$BIN" serve --legacy "http://$UP" --listen "127.0.0.1:$PORT" \
    --admin 127.0.0.1:18102 --workers 1
done

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/cb;
    proxy_temp_path $work/nginx/px;
    fastcgi_temp_path $work/nginx/fc;
    uwsgi_temp_path $work/nginx/uw;
    scgi_temp_path $work/nginx/sc;
    keepalive_requests 1000000;
    upstream legacy { server $UP; keepalive 64; }
    server {
        listen 127.0.0.1:$PORT;
        location / { proxy_pass http://legacy; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
per_request nginx nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
WRK_SCRIPT=bench/browser.lua per_request nginx-brow nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
