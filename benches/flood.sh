#!/usr/bin/env bash
# An INVITE flood from unknown sources while calls are live: CALLS
# (default 20) load-generator calls from 127.0.0.1, the only trusted
# address, for HOLD seconds, and meanwhile SIPp sending RATE (default 150)
# INVITEs a second for HOLD - 10 seconds, from SOURCES addresses (default 1:
# 127.0.0.2; more: 127.0.0.2, .3, ..., one SIPp each, the rate shared, so
# each can stay under the per-address limit). Reports the live calls'
# figures (late and lost agent frames, turn latency) and what the flood got back.
#
#   benches/flood.sh [CALLS] [RATE] [HOLD] [SOURCES]
#
# Needs sipp and `cargo build --release --bin voxgate --bin loadgen`.
set -euo pipefail
calls=${1:-20}
rate=${2:-150}
hold=${3:-60}
sources=${4:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
export VOXGATE_SIP__TRUSTED='["127.0.0.1/32"]'
flood_s=$((hold - 10))
each=$(( (rate + sources - 1) / sources ))
# Starts when the calls are up; stats land in the server's scratch folder.
export LOADGEN_ALONGSIDE="sleep 5; cd \"\$work\" && for i in \$(seq 1 $sources); do \
  sipp -sn uac 127.0.0.1:\$port -s 1000 -i 127.0.0.\$((i + 1)) -p \$((40000 + i)) -r $each \
  -m $((each * flood_s)) -l $((each * 40)) -timeout ${hold}s -nostdin -trace_stat -stf flood_\$i.csv \
  -fd 1 > flood_\$i.out 2>&1 & done; wait; python3 \"$root/benches/flood_report.py\" flood_*.csv"
VOXGATE_VAD__BACKEND=${VOXGATE_VAD__BACKEND:-webrtc} "$root/benches/loadgen.sh" "$calls" clean "$hold" -- --label flood
