#!/usr/bin/env bash
# gRPC through the facade with real gRPC peers (grpcio, gRPC's C core, from PyPI) on both sides:
# see check.py for what is checked. .ci/run installs grpcio; elsewhere: pip install grpcio.
#
#   bash tests/grpc/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# The binary the tests built (.ci/run passes it), else a fresh build.
if [ -z "${STRANGLER_BIN:-}" ]; then
  cargo build -q -p strangler
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  STRANGLER_BIN="$target_dir/debug/strangler"
fi
exec python3 tests/grpc/check.py "$STRANGLER_BIN"
