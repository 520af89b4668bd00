#!/usr/bin/env bash
# Server time of each dashboard page over 100 contexts, 10,000 routes and 30 days of history on
# SQLite (see dashboard/benches/pages.rs). The first run builds the database (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p strangler-dashboard --bench pages
