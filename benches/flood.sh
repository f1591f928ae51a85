#!/usr/bin/env bash
# An INVITE flood from an unknown source while calls are live: CALLS
# (default 20) load-generator calls from 127.0.0.1, the only trusted
# address, for HOLD seconds, and meanwhile SIPp from 127.0.0.2 sending RATE
# (default 150) INVITEs a second for HOLD - 10 seconds. Reports the live
# calls' figures (late and lost agent frames, turn latency) and what SIPp's
# flood got back.
#
#   benches/flood.sh [CALLS] [RATE] [HOLD]
#
# Needs sipp and `cargo build --release --bin voxgate --bin loadgen`.
set -euo pipefail
calls=${1:-20}
rate=${2:-150}
hold=${3:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
export VOXGATE_SIP__TRUSTED='["127.0.0.1/32"]'
flood_s=$((hold - 10))
# Starts when the calls are up; stats land in the server's scratch folder.
export LOADGEN_ALONGSIDE="sleep 5; cd \"\$work\" && sipp -sn uac 127.0.0.1:\$port -s 1000 -i 127.0.0.2 -r $rate \
  -m $((rate * flood_s)) -l $((rate * 40)) -timeout ${hold}s -nostdin -trace_stat -stf flood.csv \
  -fd 1 > flood.out 2>&1 || true; python3 \"$root/benches/flood_report.py\" flood.csv"
VOXGATE_VAD__BACKEND=${VOXGATE_VAD__BACKEND:-webrtc} "$root/benches/loadgen.sh" "$calls" clean "$hold" -- --label flood
