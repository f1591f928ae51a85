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
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$root"
VOXGATE_HTTP__LISTEN=127.0.0.1:$http VOXGATE_SIP__ENABLED=false \
VOXGATE_STORAGE__RECORDINGS_DIR="$work/recordings" VOXGATE_LOG__FILTER=warn \
  target/release/voxgate serve --config config.toml 2> "$work/server.log" &
server=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$http/healthz" > /dev/null && break
  sleep 0.5
done
target/release/ws_load "ws://127.0.0.1:$http/v1/streams/twilio" "$calls" "$seconds" "$server"
