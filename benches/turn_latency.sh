#!/usr/bin/env bash
# The caller's wait on the default offline agent: CALLS concurrent Twilio
# Media Streams calls, each asking ten questions (espeak-ng, 8 kHz) of the
# default bakery agent in real time, timed at the client from the end of each
# question's speech to the agent's first audio (benches/src/bin/turn_latency.rs).
#
#   benches/turn_latency.sh [CALLS] [OUT_DIR]
#
# Needs `cargo build --release --bin voxgate --bin turn_latency`. The agent's
# answers are kept as WAVs in OUT_DIR (default: a scratch folder, removed).
# TICK_CALLS=K also holds K SIP calls (SIPp, silent) through the run and
# prints how late their 20 ms media ticks ran while the models worked.
set -euo pipefail
calls=${1:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/server.sh"
out=${2:-$work/answers}
cd "$root"
questions=(
  "Hello. What time do you open on Saturday?"
  "Where is the bakery?"
  "How much does a chocolate cake cost?"
  "Do you deliver orders to my house?"
  "I would like a birthday cake for my son. How many days before do I need to order it?"
  "Are you open on Sunday?"
  "What time do you close on Friday?"
  "Is the delivery free?"
  "Okay, thank you. Can I pick the cake up at the shop?"
  "What is the address again?"
)
files=()
for i in "${!questions[@]}"; do
  n=$(printf '%02d' $((i + 1)))
  espeak-ng -v en-us -s 165 -w "$work/q$n-raw.wav" "${questions[$i]}"
  # 8 kHz phone audio, a little silence before the caller speaks.
  sox "$work/q$n-raw.wav" -r 8000 -c 1 -b 16 "$work/q$n.wav" pad 0.3 0
  files+=("$work/q$n.wav")
done
tick_calls=${TICK_CALLS:-0}
if [ "$tick_calls" -gt 0 ]; then
  sip_port=$(free_port DGRAM)
  export VOXGATE_SIP__UDP_LISTEN=127.0.0.1:$sip_port VOXGATE_SIP__TCP_LISTEN=127.0.0.1:$sip_port
  export VOXGATE_RTP__NO_MEDIA_TIMEOUT_S=600 VOXGATE_AGENT__HANGUP_AFTER_SILENCE_MS=0 VOXGATE_AGENT__REPROMPT_AFTER_MS=0
else
  export VOXGATE_SIP__ENABLED=false
fi
export VOXGATE_HTTP__API_KEY=turn-latency-bench
# The calls' own breakdown of each turn (final transcript, commit, first
# token, first audio), printed after the client's figures.
keep_results() {
  local api="http://127.0.0.1:$http/v1/calls" auth="Authorization: Bearer $VOXGATE_HTTP__API_KEY"
  mkdir -p "$out"
  sleep 3 # the calls end just after the client hangs up
  for id in $(curl -sf -H "$auth" "$api?limit=50" | python3 -c 'import json,sys; print(" ".join(c["id"] for c in json.load(sys.stdin)["calls"]))'); do
    curl -sf -H "$auth" "$api/$id" > "$out/$id.json"
    python3 - "$out/$id.json" <<'PY'
import json, sys
call = json.load(open(sys.argv[1]))
lines = {l["turn"]: l["text"] for l in call.get("transcript", []) if l.get("speaker") == "caller"}
for t in call.get("latencies", []):
    print("  server turn %2d: final %5s  committed %5s  first token %5s  first audio %5s  first frame %5s  heard as: %s" % (
        t["turn"], t.get("final_transcript_ms"), t.get("committed_ms"), t.get("llm_first_token_ms"),
        t.get("tts_first_audio_ms"), t.get("first_frame_ms"), lines.get(t["turn"], "")))
PY
  done
}
start_server
ticks() { curl -sf "http://127.0.0.1:$http/metrics" | grep '^voxgate_media_tick_lateness_seconds_bucket' || true; }
if [ "$tick_calls" -gt 0 ]; then
  sipp -sn uac -s 1000 "127.0.0.1:$sip_port" -i 127.0.0.1 -m "$tick_calls" -l "$tick_calls" -r 10 -d 600000 \
    -bg -trace_err -error_file "$work/sipp.err" > /dev/null || [ $? -eq 99 ] # -bg: the parent exits 99
  sleep 5
  ticks > "$work/ticks-before"
fi
"${CARGO_TARGET_DIR:-target}/release/turn_latency" "ws://127.0.0.1:$http/v1/streams/twilio" "$calls" "$out" "${files[@]}"
if [ "$tick_calls" -gt 0 ]; then
  ticks > "$work/ticks-after"
  pkill -f "sipp -sn uac -s 1000 127.0.0.1:$sip_port" || true
  python3 - "$work/ticks-before" "$work/ticks-after" "$tick_calls" <<'PY'
import re, sys
def read(path):
    out = {}
    for line in open(path):
        m = re.match(r'voxgate_media_tick_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m: out[m.group(1)] = float(m.group(2))
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
total = b.get("+Inf", 0) - a.get("+Inf", 0)
if total <= 0:
    sys.exit("no SIP media ticks counted")
late = ", ".join(f"> {float(le) * 1000:g} ms: {100 * (total - (b[le] - a.get(le, 0))) / total:.2f} %"
                 for le in sorted((k for k in b if k != "+Inf"), key=float) if float(le) >= 0.002)
print(f"SIP media ticks of {sys.argv[3]} held calls during the run: {total:.0f}; later than {late}")
PY
fi
