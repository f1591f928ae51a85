#!/usr/bin/env bash
# WebRTC load: CALLS concurrent str0m peers (Opus silence in real time) for
# SECONDS against a release `voxgate serve` with the default offline agent,
# with the server's CPU and RSS.
#
#   benches/rtc_load.sh [CALLS] [SECONDS]
#
# Needs `cargo build --release --bin voxgate --bin rtc_load`.
set -euo pipefail
calls=${1:-50}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/server.sh"
cd "$root"
export VOXGATE_SIP__ENABLED=false
# Every peer is on 127.0.0.1: no per-address limit on the offers.
export VOXGATE_HTTP__PUBLIC_RATE_LIMIT=0
start_server
"${CARGO_TARGET_DIR:-target}/release/rtc_load" "http://127.0.0.1:$http" "$calls" "$seconds" "$server"
