#!/usr/bin/env bash
# A profile-guided release build of `strangler`: an instrumented build serves a training load
# (the pass-through cases of bench/run.sh, a browser's head, a migrated and a translated
# context), its counts are merged, and the release build is made again with them, so that the
# compiler lays out the request path's code by how often each branch runs (hot code together,
# cold code apart: fewer instruction-cache misses and taken branches per request).
#
#   bash bench/pgo.sh            → target/pgo/<host triple>/release/strangler
#
# (The builds name the host's target so that the profile flags reach the program's code and
# not the build scripts and procedural macros the compiler runs.)
# Then measure it like the plain build: STRANGLER_BIN=target/pgo/<host>/release/strangler for
# bench/run.sh (BENCH_STRANGLER_BIN), or bench/instructions.sh's counts. Needs the toolchain's
# llvm-profdata (`rustup component add llvm-tools`) and wrk. Each build is a whole release
# build in its own target directory (~9 min each on 2 cores); the plain target/release is left
# as it is. The profile is only good for the code it was taken from: run the script again after
# a change. Environment: PGO_SECONDS, the length of each training run [3].
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${PGO_SECONDS:-3}
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[[ -x "$profdata" ]] || {
    echo "error: $profdata not found; install it with: rustup component add llvm-tools" >&2
    exit 1
}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# 1. The instrumented build, and the bench upstream (a plain build).
cargo build --release -p strangler-bench --bin bench-upstream
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$work/raw" CARGO_TARGET_DIR="$ROOT/target/pgo-gen" \
    cargo build --release -p strangler --bin strangler --target "$host"
gen="$ROOT/target/pgo-gen/$host/release/strangler"

UP=127.0.0.1:18200
PORT=18201
ADMIN=127.0.0.1:18202
target/release/bench-upstream "$UP" >"$work/upstream.log" 2>&1 &
pids+=($!)

wait_port() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/hello" && return 0
        sleep 0.1
    done
    return 1
}

# serve CATALOG_URL: the instrumented facade, one worker as in the benches.
serve() {
    STRANGLER_LOG_LEVEL=warn STRANGLER_CATALOG_URL="$1" "$gen" serve --legacy "http://$UP" \
        --listen "127.0.0.1:$PORT" --admin "$ADMIN" --workers 1 >>"$work/strangler.log" 2>&1 &
    facade=$!
    pids+=("$facade")
    wait_port || {
        cat "$work/strangler.log" >&2
        exit 1
    }
}

# load PATH [WRK ARGS...]: at 8 and at 64 connections.
load() {
    local path=$1
    shift
    for c in 8 64; do
        wrk -t1 -c"$c" -d"${SECONDS_EACH}s" "$@" "http://127.0.0.1:$PORT$path" >/dev/null
    done
}

# stop: SIGTERM, so that the process exits through main and writes its counts.
stop() {
    kill -TERM "$facade"
    wait "$facade" 2>/dev/null || true
}

printf 'wrk.method = "POST"\nwrk.body = string.rep("x", 16384)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' \
    >"$work/post16k.lua"

# 2. Training: pass-through (small GET, a browser's head, 16 KiB POST, a chunked answer).
serve "sqlite://$work/empty.db"
load /hello
load /hello -s bench/browser.lua
load /echo -s "$work/post16k.lua"
load /chunked
stop

# A migrated context on the new side's pool, then the same with a head translator.
source bench/hello-catalog.sh
for variant in migrated translated; do
    hello_catalog "$UP" "$([ "$variant" = translated ] && printf '%s' "$HEAD_ONLY")" >"$work/$variant.toml"
    STRANGLER_CATALOG_URL="sqlite://$work/$variant.db" "$gen" import --config "$work/$variant.toml" \
        >>"$work/strangler.log" 2>&1
    serve "sqlite://$work/$variant.db"
    load /hello
    stop
done

# 3. Merge, and the release build with the profile.
"$profdata" merge -o "$work/strangler.profdata" "$work"/raw
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$work/strangler.profdata" CARGO_TARGET_DIR="$ROOT/target/pgo" \
    cargo build --release -p strangler --bin strangler --target "$host"
echo "built target/pgo/$host/release/strangler"
