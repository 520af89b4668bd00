#!/usr/bin/env bash
# Translator cost on the live path: a migrated route whose context has a head-only translator
# (path rewrite, headers added, removed and renamed, a capture set as a header) against the
# same route without a translator, in one run. Each variant is measured twice, alternating:
# throughput and latency at saturation (wrk), and the facade's CPU per request at a fixed
# offered rate (bench-load), which is what the comparison rests on when the machine's
# throughput varies from run to run (the spread between the two plain runs is printed).
#
#   bash bench/translate.sh           (BENCH_SKIP_BUILD=1 to use the existing release binaries)
#
# Layout as bench/run.sh: the facade on CPU 1; the upstream (bench-upstream, which answers
# any path) and wrk on CPU 0. Knobs: BENCH_SECONDS [10], BENCH_CONNECTIONS [64].
set -euo pipefail
# shadow.sh brings run.sh and the fixed-rate helpers (fixed_rate, cpu_ticks).
source "$(dirname "${BASH_SOURCE[0]}")/shadow.sh"
FIXED_RATE="${BENCH_FIXED_RATE:-5000}"
declare -A CPU

# write_translate_catalog FILE WITH_TRANSLATOR: `hello` migrated to the upstream itself, with
# or without the head-only translator (bench/hello-catalog.sh).
source "$(dirname "${BASH_SOURCE[0]}")/hello-catalog.sh"
write_translate_catalog() {
    {
        printf '[legacy]\nurl = "http://%s"\n\n' "$UPSTREAM_ADDR"
        hello_catalog "$UPSTREAM_ADDR" "$([[ "$2" == yes ]] && printf '%s' "$HEAD_ONLY")"
    } >"$1"
}

start_variant() {
    local name="$1" with="$2"
    write_translate_catalog "$WORK_DIR/$name.toml" "$with"
    rm -f "$WORK_DIR/$name.db"
    STRANGLER_CATALOG_URL="sqlite://$WORK_DIR/$name.db" \
        "$STRANGLER_BIN" import --config "$WORK_DIR/$name.toml" >>"$LOG_DIR/strangler-$name.log" 2>&1 ||
        die "import failed (see $LOG_DIR/strangler-$name.log)"
    CATALOG_URL="sqlite://$WORK_DIR/$name.db" start_strangler "$LOG_DIR/strangler-$name.log"
}

translate_main() {
    install_tools
    [[ "${BENCH_SKIP_BUILD:-}" == 1 ]] || (cd "$REPO_ROOT" && cargo build --release -p strangler -p strangler-bench)
    WORK_DIR="$(mktemp -d -t strangler-translate.XXXXXX)"
    LOG_DIR="$WORK_DIR/logs"
    mkdir -p "$LOG_DIR"
    trap cleanup EXIT
    start_upstream
    local round variant
    for round in 1 2; do
        for variant in plain translated; do
            start_variant "$variant" "$([[ $variant == translated ]] && echo yes || echo no)"
            # The translated variant must really translate: the header it adds is there.
            if [[ "$variant" == translated ]]; then
                curl -fsS -D - -o /dev/null "http://$STRANGLER_ADDR/hello" | grep -qi '^x-contract: legacy-v1' ||
                    die "the translator did not apply"
            fi
            measure "$variant-$round" "http://$STRANGLER_ADDR"
            local line
            line="$(fixed_rate "$variant-$round" "$FIXED_RATE")"
            log "$line"
            CPU[$variant-$round]="$(sed -E 's/.*cpu_us_per_req=([0-9.]+).*/\1/' <<<"$line")"
            stop_pid "$PROXY_PID"
        done
    done
    log ""
    log "variant       req/s   p50 ms  p99 ms  CPU µs/req @ $FIXED_RATE/s"
    for variant in plain-1 translated-1 plain-2 translated-2; do
        printf '%-12s %8s %7s %7s %7s\n' "$variant" "${RPS[$variant]}" "${P50[$variant]}" "${P99[$variant]}" "${CPU[$variant]}"
    done
    log "translated/plain CPU per request: $(awk -v a="${CPU[translated-1]}" -v b="${CPU[translated-2]}" \
        -v c="${CPU[plain-1]}" -v d="${CPU[plain-2]}" 'BEGIN { printf "%.3f", (a + b) / (c + d) }')"
    log "translated/plain throughput: $(awk -v a="${RPS[translated-1]}" -v b="${RPS[translated-2]}" \
        -v c="${RPS[plain-1]}" -v d="${RPS[plain-2]}" 'BEGIN { printf "%.3f", (a + b) / (c + d) }')" \
        "(spread between plain runs: $(awk -v c="${RPS[plain-1]}" -v d="${RPS[plain-2]}" \
        'BEGIN { x = c / d; if (x < 1) x = 1 / x; printf "%.3f", x }'))"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    translate_main "$@"
fi
