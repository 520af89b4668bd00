#!/usr/bin/env bash
# The dashboard's browser test: a legacy app (Python's http.server), `strangler serve` with a
# small catalog and both tokens, then tests/browser/dashboard.mjs in Debian's Chromium.
# Needs chromium (apt-get install -y chromium) and `npm ci` in tests/browser; .ci/run does both.
#
#   bash tests/browser/run.sh                 (ARTIFACTS=docs/screenshots to refresh those)
set -euo pipefail
cd "$(dirname "$0")/../.."
# The binary the tests built (.ci/run passes it), else a fresh build wherever the target
# directory is (CARGO_TARGET_DIR included): never a stale binary from an earlier build.
if [ -z "${STRANGLER_BIN:-}" ]; then
  cargo build -q -p strangler
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  STRANGLER_BIN="$target_dir/debug/strangler"
fi
BIN="$STRANGLER_BIN"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LEGACY="$(free_port)" PUBLIC="$(free_port)" ADMIN="$(free_port)"
echo '<h1>the legacy shop</h1>' >"$work/index.html"
python3 -m http.server "$LEGACY" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$LEGACY/" >/dev/null && break; sleep 0.1; done

cat >"$work/strangler.toml" <<TOML
[[services]]
name = "orders-svc"
urls = ["http://127.0.0.1:$LEGACY"]

[[contexts]]
name = "orders"
target = "orders-svc"
description = "Orders and their lines, moving to the orders service."
routes = [{ methods = ["GET"], path = "/orders/{id}" }]

[[contexts]]
name = "catalog"
target = "orders-svc"
routes = [{ path = "/products/{id}" }]
TOML
export STRANGLER_CATALOG_URL="sqlite://$work/catalog.db"
export STRANGLER_AUTH_OPERATOR_TOKEN="browser-operator-token-0123"
export STRANGLER_AUTH_VIEWER_TOKEN="browser-viewer-token-456789"
"$BIN" import --config "$work/strangler.toml" >/dev/null
"$BIN" serve --legacy "http://127.0.0.1:$LEGACY" --listen "127.0.0.1:$PUBLIC" \
  --admin "127.0.0.1:$ADMIN" >"$work/strangler.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
# Some traffic, so that the overview has figures.
for i in $(seq 1 20); do curl -s -o /dev/null "http://127.0.0.1:$PUBLIC/orders/$i" || true; done
for i in $(seq 1 10); do curl -s -o /dev/null "http://127.0.0.1:$PUBLIC/" || true; done
# And unclaimed paths, for the inventory (ids fold into `{id}`).
for i in $(seq 101 130); do curl -s -o /dev/null "http://127.0.0.1:$PUBLIC/accounts/$i" || true; done
for i in $(seq 1 5); do curl -s -o /dev/null "http://127.0.0.1:$PUBLIC/search?q=$i" || true; done

# until URL TOKEN PYTHON-CONDITION: polls an admin API answer (as `v`) until the condition holds.
until_api() {
  local url=$1 token=$2 cond=$3
  for _ in $(seq 1 300); do
    if curl -fs -H "authorization: Bearer $token" "$url" | python3 -c "import json,sys; v=json.load(sys.stdin); sys.exit(0 if ($cond) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "gave up waiting for $cond on $url" >&2
  return 1
}
# The traffic has been flushed to the catalog: the overview and the inventory have figures.
until_api "http://127.0.0.1:$ADMIN/api/v1/unclaimed" "$STRANGLER_AUTH_VIEWER_TOKEN" \
  "any('/accounts/{id}' in t['template'] for t in v['templates'])"

ADMIN_URL="http://127.0.0.1:$ADMIN" PUBLIC_URL="http://127.0.0.1:$PUBLIC" OPERATOR_TOKEN="$STRANGLER_AUTH_OPERATOR_TOKEN" \
  VIEWER_TOKEN="$STRANGLER_AUTH_VIEWER_TOKEN" \
  NODE_PATH="tests/browser/node_modules" node tests/browser/dashboard.mjs || {
    echo "strangler's log:" >&2
    tail -n 30 "$work/strangler.log" >&2
    exit 1
  }

# The demo's walkthrough in the browser: `strangler demo` with its shoppers, then
# tests/browser/demo.mjs reads the planted bug, starts a context from unclaimed traffic and
# promotes `orders`; its screenshots are the README walkthrough's.
kill "${pids[1]}" 2>/dev/null || true
DEMO_PUBLIC="$(free_port)" DEMO_ADMIN="$(free_port)"
env -u STRANGLER_AUTH_OPERATOR_TOKEN -u STRANGLER_AUTH_VIEWER_TOKEN -u STRANGLER_CATALOG_URL \
  STRANGLER_LOG_LEVEL=warn "$BIN" demo --data-dir "$work/demo" --users 16 \
  --legacy-listen 127.0.0.1:0 --orders-listen 127.0.0.1:0 \
  --listen "127.0.0.1:$DEMO_PUBLIC" --admin "127.0.0.1:$DEMO_ADMIN" >"$work/demo.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "Ctrl-C stops everything" "$work/demo.out" 2>/dev/null && break; sleep 0.1; done
DEMO_TOKEN="$(awk '/^ *operator token /{print $3}' "$work/demo.out")"
[ -n "$DEMO_TOKEN" ] || { cat "$work/demo.out" >&2; exit 1; }
# The shoppers' first comparisons, with the planted bug's signature, reached the catalog.
until_api "http://127.0.0.1:$DEMO_ADMIN/api/v1/contexts/orders/shadow" "$DEMO_TOKEN" \
  "any(s['signature'].startswith('value \$.total') for s in v['top_signatures'])"
until_api "http://127.0.0.1:$DEMO_ADMIN/api/v1/unclaimed" "$DEMO_TOKEN" \
  "any(t['template'] == 'GET /api/customers/{id}' for t in v['templates'])"
demo_phase() {
  ADMIN_URL="http://127.0.0.1:$DEMO_ADMIN" OPERATOR_TOKEN="$DEMO_TOKEN" PHASE="$1" \
    NODE_PATH="tests/browser/node_modules" node tests/browser/demo.mjs || {
      echo "the demo's output:" >&2
      tail -n 30 "$work/demo.out" >&2
      exit 1
    }
}
demo_phase bug
# The fix: Ctrl-C, and the demo again on the same data with --fixed.
kill -INT "${pids[-1]}"
for _ in $(seq 1 100); do kill -0 "${pids[-1]}" 2>/dev/null || break; sleep 0.1; done
env -u STRANGLER_AUTH_OPERATOR_TOKEN -u STRANGLER_AUTH_VIEWER_TOKEN -u STRANGLER_CATALOG_URL \
  STRANGLER_LOG_LEVEL=warn "$BIN" demo --fixed --data-dir "$work/demo" --users 16 \
  --legacy-listen 127.0.0.1:0 --orders-listen 127.0.0.1:0 \
  --listen "127.0.0.1:$DEMO_PUBLIC" --admin "127.0.0.1:$DEMO_ADMIN" >"$work/demo.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "Ctrl-C stops everything" "$work/demo.out" 2>/dev/null && break; sleep 0.1; done
DEMO_TOKEN="$(awk '/^ *operator token /{print $3}' "$work/demo.out")"
[ -n "$DEMO_TOKEN" ] || { cat "$work/demo.out" >&2; exit 1; }
until_api "http://127.0.0.1:$DEMO_ADMIN/api/v1/contexts/orders" "$DEMO_TOKEN" "v['item']['state'] == 'shadow'"
demo_phase fixed
