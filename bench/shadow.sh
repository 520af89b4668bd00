#!/usr/bin/env bash
# Shadow cost: what shadowing every request costs the primary path, at a fixed offered load of
# half the facade's pass-through saturation (the governor samples shadows down by itself at its
# default and at its highest ceiling), and what it does to throughput at saturation with and
# without a tight shadow budget.
#
#   bash bench/shadow.sh            (BENCH_SKIP_BUILD=1 to use the existing release binaries)
#
# Layout as bench/run.sh: the facade on CPU 1; legacy, the new service (both bench-upstream),
# wrk and bench-load on CPU 0. Knobs: BENCH_SECONDS [10], BENCH_CONNECTIONS [64].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"

NEW_ADDR=127.0.0.1:18001
LOAD_BIN="$REPO_ROOT/target/release/bench-load"

# write_shadow_catalog FILE STATE: `hello` served by legacy (STATE legacy) or shadowed to the
# new service (STATE shadow).
write_shadow_catalog() {
    {
        printf '[legacy]\nurl = "http://%s"\n\n' "$UPSTREAM_ADDR"
        printf '[[services]]\nname = "new-svc"\nurls = ["http://%s"]\n\n' "$NEW_ADDR"
        printf '[[contexts]]\nname = "hello"\ntarget = "new-svc"\nstate = "%s"\n\n' "$2"
        printf '[[contexts.routes]]\nmethods = ["GET"]\npath = "/hello"\n\n'
    } >"$1"
}

# cpu_ticks PID: user + system clock ticks so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# start_with_state STATE [ENV…]: a facade on its own catalog with `hello` in STATE.
start_with_state() {
    local state="$1"
    shift
    write_shadow_catalog "$WORK_DIR/$state.toml" "$state"
    rm -f "$WORK_DIR/$state.db"
    STRANGLER_CATALOG_URL="sqlite://$WORK_DIR/$state.db" \
        "$STRANGLER_BIN" import --config "$WORK_DIR/$state.toml" >>"$LOG_DIR/strangler-$state.log" 2>&1 ||
        die "import failed (see $LOG_DIR/strangler-$state.log)"
    local kv
    for kv in "$@"; do export "${kv?}"; done
    CATALOG_URL="sqlite://$WORK_DIR/$state.db" start_strangler "$LOG_DIR/strangler-$state.log"
    for kv in "$@"; do unset "${kv%%=*}"; done
}

# fixed_rate NAME RATE: bench-load at RATE for the run length; prints its line and CPU µs/request.
fixed_rate() {
    local name="$1" rate="$2" before after line sent
    taskset -c "$LOAD_CPU" "$LOAD_BIN" "http://$STRANGLER_ADDR/hello" "$rate" 2 "$CONNECTIONS" >/dev/null
    before="$(cpu_ticks "$PROXY_PID")"
    line="$(taskset -c "$LOAD_CPU" "$LOAD_BIN" "http://$STRANGLER_ADDR/hello" "$rate" "$SECONDS_PER_RUN" "$CONNECTIONS")"
    after="$(cpu_ticks "$PROXY_PID")"
    sent="$(sed -E 's/.*sent=([0-9]+).*/\1/' <<<"$line")"
    log "$name @ $rate req/s: $line cpu_us_per_req=$(awk -v t=$((after - before)) -v n="$sent" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
}

shadow_counter() {
    curl -fsS "http://$STRANGLER_ADMIN/metrics" | awk -v want="$1" 'index($0, want) == 1 { print $2 }'
}

# governor_line: what the shadow governor did in the run just made.
governor_line() {
    log "compared: $(shadow_counter 'strangler_shadow_compared_total{context="hello"}')," \
        "skipped (budget full): $(shadow_counter 'strangler_shadow_skipped_total{context="hello",reason="budget_full"}')"
}

shadow_main() {
    install_tools
    [[ "${BENCH_SKIP_BUILD:-}" == 1 ]] || (cd "$REPO_ROOT" && cargo build --release -p strangler -p strangler-bench)
    WORK_DIR="$(mktemp -d -t strangler-shadow.XXXXXX)"
    LOG_DIR="$WORK_DIR/logs"
    mkdir -p "$LOG_DIR"
    trap cleanup EXIT
    start_upstream
    taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" "$NEW_ADDR" >"$LOG_DIR/new.log" 2>&1 &
    PIDS+=("$!")
    wait_ready "http://$NEW_ADDR/hello" "$!" new-service "$LOG_DIR/new.log"

    start_with_state legacy
    measure off-saturation "http://$STRANGLER_ADDR"
    local half
    half="$(awk -v r="${RPS[off-saturation]}" 'BEGIN { printf "%d", r / 2 }')"
    fixed_rate "shadow off" "$half"
    stop_pid "$PROXY_PID"

    start_with_state shadow
    fixed_rate "shadow on " "$half"
    governor_line
    measure on-saturation "http://$STRANGLER_ADDR"
    log "skipped (budget full): $(shadow_counter 'strangler_shadow_skipped_total{context="hello",reason="budget_full"}')"
    stop_pid "$PROXY_PID"

    # The highest ceiling an operator may set.
    start_with_state shadow STRANGLER_SHADOW_CPU_CEILING=70
    fixed_rate "shadow on, cpu_ceiling 70" "$half"
    governor_line
    stop_pid "$PROXY_PID"

    start_with_state shadow STRANGLER_SHADOW_MAX_PER_SECOND=2000
    fixed_rate "shadow 2000/s" "$half"
    log "compared: $(shadow_counter 'strangler_shadow_compared_total{context="hello"}')"
    measure on-saturation-rate2000 "http://$STRANGLER_ADDR"
    stop_pid "$PROXY_PID"

    start_with_state shadow STRANGLER_SHADOW_MAX_IN_FLIGHT=8
    measure on-saturation-budget8 "http://$STRANGLER_ADDR"
    log "compared: $(shadow_counter 'strangler_shadow_compared_total{context="hello"}')," \
        "skipped (budget full): $(shadow_counter 'strangler_shadow_skipped_total{context="hello",reason="budget_full"}')"
    stop_pid "$PROXY_PID"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    shadow_main "$@"
fi
