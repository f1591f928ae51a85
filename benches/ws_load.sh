#!/usr/bin/env bash
# Websocket media load: CALLS concurrent Twilio-protocol streams for SECONDS
# against a release `voxgate serve` with the default offline agent (each
# call greeted, then silence), with the server's CPU and RSS.
#
#   benches/ws_load.sh [CALLS] [SECONDS]
#
# Needs `cargo build --release --bin voxgate --bin ws_load`.
set -euo pipefail
calls=${1:-50}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/server.sh"
cd "$root"
export VOXGATE_SIP__ENABLED=false
start_server
"${CARGO_TARGET_DIR:-target}/release/ws_load" "ws://127.0.0.1:$http/v1/streams/twilio" "$calls" "$seconds" "$server"
