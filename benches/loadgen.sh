#!/usr/bin/env bash
# The full media path under load: `target/release/loadgen` places CALLS
# concurrent SIP calls (G.711 µ-law, callers talking from fixtures, over the
# impairment PROFILE) into a release `voxgate serve` whose agent runs on the
# scripted providers ([scripted] in config.toml: fixed latencies, a tone for
# speech), holds them HOLD seconds together and reports; see loadgen.rs.
#
#   benches/loadgen.sh [CALLS] [PROFILE] [HOLD] [-- extra loadgen flags]
#   PROFILE: clean | 4g | 3g | gilbert-elliott
#
# VOXGATE_* settings exported before it reach the server (e.g.
# VOXGATE_VAD__BACKEND=webrtc). LOADGEN_JSON=FILE appends the results;
# LOADGEN_ALONGSIDE="command" runs beside the calls (see flood.sh);
# LOADGEN_NICE=N runs the load generator at nice N, so that on a shared
# machine it takes the CPU the server leaves, as a separate machine would.
# Needs `cargo build --release --bin voxgate --bin loadgen`.
set -euo pipefail
calls=${1:-50}
profile=${2:-clean}
hold=${3:-60}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
keep_results() { cp "$work/server.log" /tmp/loadgen_server.log 2> /dev/null; }
source "$root/benches/server.sh"
port=$(free_port DGRAM)
cd "$root"
export VOXGATE_SIP__UDP_LISTEN=127.0.0.1:$port VOXGATE_SIP__TCP_LISTEN=127.0.0.1:$port
export VOXGATE_AGENT__STT=scripted VOXGATE_AGENT__LLM=scripted VOXGATE_AGENT__TTS=scripted
# No knowledge to embed per turn, no call cut short by the agent's timers.
export VOXGATE_AGENT__KNOWLEDGE="" VOXGATE_AGENT__REPROMPT_AFTER_MS=0 VOXGATE_AGENT__HANGUP_AFTER_SILENCE_MS=0
# Each call's port pair: room for a thousand calls and more.
export VOXGATE_RTP__PORT_MIN=${VOXGATE_RTP__PORT_MIN:-20000} VOXGATE_RTP__PORT_MAX=${VOXGATE_RTP__PORT_MAX:-29999}
# Replies stream at once (the first sentence is whole at the first token),
# so the turn's fixed waits are: the endpointer's silence, the turn's
# minimum delay (or the transcript, if later), first token, first audio.
export VOXGATE_SCRIPTED__LLM_PER_TOKEN_MS=${VOXGATE_SCRIPTED__LLM_PER_TOKEN_MS:-0}
stt=${VOXGATE_SCRIPTED__STT_LATENCY_MS:-200} delay=${VOXGATE_AGENT__ENDPOINTING_MIN_DELAY_MS:-300}
waits=$(( ${VOXGATE_ENDPOINTING__MIN_SILENCE_MS:-600} + (stt > delay ? stt : delay) \
  + ${VOXGATE_SCRIPTED__LLM_FIRST_TOKEN_MS:-300} + ${VOXGATE_SCRIPTED__TTS_FIRST_AUDIO_MS:-100} ))
start_server
ulimit -n 65536 2> /dev/null || true
# Something to run beside the calls (benches/flood.sh), with $port and $work set.
if [ -n "${LOADGEN_ALONGSIDE:-}" ]; then
  (eval "$LOADGEN_ALONGSIDE") &
  alongside=$!
fi
nice -n "${LOADGEN_NICE:-0}" "${CARGO_TARGET_DIR:-target}/release/loadgen" --target "127.0.0.1:$port" --calls "$calls" --profile "$profile" \
  --hold "$hold" --pid "$server" --waits-ms "$waits" --metrics "http://127.0.0.1:$http/metrics" \
  ${LOADGEN_JSON:+--json "$LOADGEN_JSON"} "$@"
if grep -E " (WARN|ERROR) " "$work/server.log" | head -5 | grep -q .; then
  echo "server warnings (first 5):"
  grep -E " (WARN|ERROR) " "$work/server.log" | head -5
fi
if [ -n "${alongside:-}" ]; then wait "$alongside" || true; fi
