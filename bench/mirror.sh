#!/usr/bin/env bash
# Mirrored-write latency: what making a mirrored write durable (synced to the facade's local
# write-ahead log before legacy's answer is released) adds to a write, at a fixed offered load.
#
#   bash bench/mirror.sh            (BENCH_SKIP_BUILD=1 to use the existing release binaries)
#
# Three runs of `POST /sink` (a ~256-byte JSON body) through the facade, each at BENCH_RATE
# writes/s [500] for BENCH_SECONDS [10] over BENCH_CONNECTIONS [16]:
#   direct      bench-load → bench-upstream (no proxy)
#   not mirror  the route's context in shadow, writes not shadowed
#   mirror      the same route with `writes = "mirror"`: every write synced to the log first
# The log lives under the work directory, on the disk `mktemp -d` gives (tmpfs would hide the
# cost of the sync; the script says which filesystem it measured).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"

NEW_ADDR=127.0.0.1:18001
LOAD_BIN="$REPO_ROOT/target/release/bench-load"
RATE="${BENCH_RATE:-500}"
WRITE_CONNECTIONS="${BENCH_CONNECTIONS:-16}"

# write_mirror_catalog FILE WRITES: `POST /sink` in a shadowed context, writes WRITES.
write_mirror_catalog() {
    {
        printf '[legacy]\nurl = "http://%s"\n\n' "$UPSTREAM_ADDR"
        printf '[[services]]\nname = "new-svc"\nurls = ["http://%s"]\n\n' "$NEW_ADDR"
        printf '[[contexts]]\nname = "sink"\ntarget = "new-svc"\nstate = "shadow"\n\n'
        printf '[[contexts.routes]]\nmethods = ["POST"]\npath = "/sink"\n'
        printf 'shadow = { writes = "%s" }\n\n' "$2"
    } >"$1"
}

# write_run NAME URL: prints bench-load's line for the run.
write_run() {
    local line
    taskset -c "$LOAD_CPU" "$LOAD_BIN" "$2/sink" "$RATE" 2 "$WRITE_CONNECTIONS" 256 >/dev/null
    line="$(taskset -c "$LOAD_CPU" "$LOAD_BIN" "$2/sink" "$RATE" "$SECONDS_PER_RUN" "$WRITE_CONNECTIONS" 256)"
    printf '%-11s %s\n' "$1" "$line"
}

start_with_writes() {
    local writes="$1"
    write_mirror_catalog "$WORK_DIR/$writes.toml" "$writes"
    rm -f "$WORK_DIR/$writes.db"
    STRANGLER_CATALOG_URL="sqlite://$WORK_DIR/$writes.db" \
        "$STRANGLER_BIN" import --config "$WORK_DIR/$writes.toml" >>"$LOG_DIR/strangler-$writes.log" 2>&1 ||
        die "import failed (see $LOG_DIR/strangler-$writes.log)"
    CATALOG_URL="sqlite://$WORK_DIR/$writes.db" start_strangler "$LOG_DIR/strangler-$writes.log"
}

mirror_main() {
    install_tools
    [[ "${BENCH_SKIP_BUILD:-}" == 1 ]] || (cd "$REPO_ROOT" && cargo build --release -p strangler -p strangler-bench)
    WORK_DIR="$(mktemp -d -t strangler-mirror.XXXXXX)"
    LOG_DIR="$WORK_DIR/logs"
    mkdir -p "$LOG_DIR"
    trap cleanup EXIT
    log "log filesystem: $(df -T "$WORK_DIR" | awk 'NR == 2 { print $2 " on " $1 }')"
    start_upstream
    taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" "$NEW_ADDR" >"$LOG_DIR/new.log" 2>&1 &
    PIDS+=("$!")
    wait_ready "http://$NEW_ADDR/hello" "$!" new-service "$LOG_DIR/new.log"

    write_run direct "http://$UPSTREAM_ADDR"
    start_with_writes off
    write_run "not mirror" "http://$STRANGLER_ADDR"
    stop_pid "$PROXY_PID"
    start_with_writes mirror
    write_run mirror "http://$STRANGLER_ADDR"
    log "mirrored writes delivered: $(curl -s "http://$STRANGLER_ADMIN/metrics" | awk -F' ' '/^strangler_shadow_mirror_total\{context="sink",outcome="delivered"\}/ { print $2 }')"
    stop_pid "$PROXY_PID"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    mirror_main "$@"
fi
