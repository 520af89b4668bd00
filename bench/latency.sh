#!/usr/bin/env bash
# Added latency at a fixed offered load: wrk keeps 64 requests in flight, so bench/run.sh's p99 is
# a proxy's p99 at its own saturation, which mostly restates its throughput. Here bench-load
# sends GET /hello at fixed rates below every proxy's saturation (open loop: each request is
# timed from when it was due) to the upstream directly, through the facade and through nginx;
# each proxy's added p50/p99 is its figure minus direct's in the same round.
#
#   bash bench/latency.sh           (BENCH_SKIP_BUILD=1 to use the existing release binaries)
#
# Knobs: BENCH_RATES ["20000 35000"], BENCH_ROUNDS [2], BENCH_SECONDS [10],
# BENCH_CONNECTIONS [64]. Layout as bench/run.sh: the proxy on CPU 1; the upstream and
# bench-load on CPU 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"

LOAD_BIN="$REPO_ROOT/target/release/bench-load"

# at_rate NAME URL RATE: a 2 s warm-up, then the measured run; logs bench-load's line.
at_rate() {
    local name="$1" url="$2" rate="$3" line
    taskset -c "$LOAD_CPU" "$LOAD_BIN" "$url" "$rate" 2 "$CONNECTIONS" >/dev/null
    line="$(taskset -c "$LOAD_CPU" "$LOAD_BIN" "$url" "$rate" "$SECONDS_PER_RUN" "$CONNECTIONS")"
    log "$(printf '%-7s @ %6d req/s: %s' "$name" "$rate" "$line")"
    P50[$name-$rate]="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line")"
    P99[$name-$rate]="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")"
}

latency_main() {
    install_tools
    [[ "${BENCH_SKIP_BUILD:-}" == 1 ]] || (cd "$REPO_ROOT" && cargo build --release -p strangler -p strangler-bench)
    [[ -x "$LOAD_BIN" ]] || die "$LOAD_BIN is missing"
    WORK_DIR="$(mktemp -d -t strangler-latency.XXXXXX)"
    LOG_DIR="$WORK_DIR/logs"
    mkdir -p "$LOG_DIR"
    chmod 0755 "$WORK_DIR"
    trap cleanup EXIT
    write_nginx_conf "$WORK_DIR/nginx" "$LOG_DIR/nginx-error.log"
    check_nginx_conf "$WORK_DIR/nginx" "$LOG_DIR/nginx-error.log" || die "nginx rejected its configuration"
    print_environment
    start_upstream

    local round rate name rates="${BENCH_RATES:-20000 35000}"
    for round in $(seq 1 "${BENCH_ROUNDS:-2}"); do
        log ""
        log "== round $round"
        for rate in $rates; do
            at_rate direct "http://$UPSTREAM_ADDR/hello" "$rate"
        done
        start_strangler "$LOG_DIR/strangler.log"
        for rate in $rates; do
            at_rate facade "http://$STRANGLER_ADDR/hello" "$rate"
        done
        stop_pid "$PROXY_PID"
        start_nginx
        for rate in $rates; do
            at_rate nginx "http://$NGINX_ADDR/hello" "$rate"
        done
        stop_pid "$PROXY_PID"
        for rate in $rates; do
            for name in facade nginx; do
                log "$(awk -v n="$name" -v r="$rate" -v a50="${P50[$name-$rate]}" -v a99="${P99[$name-$rate]}" \
                    -v d50="${P50[direct-$rate]}" -v d99="${P99[direct-$rate]}" \
                    'BEGIN { printf "added by %-6s @ %6d req/s: p50 %+.3f ms, p99 %+.3f ms", n, r, a50 - d50, a99 - d99 }')"
            done
        done
    done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    latency_main "$@"
fi
