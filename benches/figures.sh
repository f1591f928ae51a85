#!/usr/bin/env bash
# The published load figures: runs the load generator against Voxgate at
# 50, 200, 500 and 1000 concurrent calls, against SIPp's -rtp_echo UAS (the
# floor: RTP echoed, no processing) at the same counts, and against Voxgate
# under each impairment profile; appends every run to RESULTS (JSON lines)
# and draws the SVG plots of BENCHMARKS.md from it.
#
#   benches/figures.sh [RESULTS] [HOLD_SECONDS]
#
# About 20 minutes. Needs sipp (apt sip-tester) and
# `cargo build --release --bin voxgate --bin loadgen --bin plot`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
results=${1:-$root/benches/results/load.jsonl}
hold=${2:-30}
bin=${CARGO_TARGET_DIR:-$root/target}/release
mkdir -p "$(dirname "$results")"
: > "$results"
export LOADGEN_JSON=$results

# Voxgate, the WebRTC VAD (the Silero VAD's cost is shown separately).
for calls in 50 200 500 1000; do
  VOXGATE_VAD__BACKEND=webrtc "$root/benches/loadgen.sh" "$calls" clean "$hold" -- --label voxgate-webrtc-vad
done
for calls in 50 200; do
  VOXGATE_VAD__BACKEND=silero "$root/benches/loadgen.sh" "$calls" clean "$hold" -- --label voxgate-silero-vad
done
for profile in 4g 3g gilbert-elliott; do
  VOXGATE_VAD__BACKEND=webrtc "$root/benches/loadgen.sh" 200 "$profile" "$hold" -- --label voxgate-webrtc-vad
done

# The floor: SIPp answers and echoes every RTP packet back, nothing more.
ulimit -n 65536 2> /dev/null || true
free_port() {
  python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_$1); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
for calls in 50 200 500 1000; do
  sip=$(free_port DGRAM) media=$(free_port DGRAM)
  scratch=$(mktemp -d)
  (cd "$scratch" && exec sipp -sn uas -i 127.0.0.1 -p "$sip" -mp "$media" -rtp_echo -nostdin > sipp.out 2>&1) &
  sipp_pid=$!
  sleep 1
  "$bin/loadgen" --target "127.0.0.1:$sip" --calls "$calls" --hold "$hold" --pid "$sipp_pid" \
    --label sipp-echo --json "$results" || true
  kill "$sipp_pid" 2> /dev/null || true
  wait "$sipp_pid" 2> /dev/null || true
  rm -rf "$scratch"
done

"$bin/plot" "$results" "$root/benches/figures"
