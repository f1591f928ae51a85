#!/usr/bin/env bash
# WebRTC call setup on loopback: headless Chromium (playwright-core) places
# CALLS browser calls one after another against a release `voxgate serve`
# with the default offline agent, and reports, from the browser's side,
# offer sent -> answer received and offer sent -> the agent's first audio
# heard, and from the server's, offer received -> DTLS connected (its
# voxgate_call_setup_seconds histogram).
#
#   benches/webrtc_setup.sh [CALLS]
#
# Needs chromium and tests/browser's npm packages (scripts/setup.sh) and
# `cargo build --release --bin voxgate`.
set -euo pipefail
calls=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/server.sh"
cd "$root"
export VOXGATE_SIP__ENABLED=false
start_server
sox fixtures/audio/silence_16k.wav -r 48000 "$work/quiet.wav"
for _ in $(seq 1 "$calls"); do
  node media-server/tests/browser/webrtc_call.mjs "http://127.0.0.1:$http" "$work/quiet.wav" 2 >> "$work/calls.jsonl"
done
curl -s "http://127.0.0.1:$http/metrics" > "$work/metrics.txt"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = [json.loads(l) for l in open(f"{work}/calls.jsonl")]
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
answer = [r["answered_ms"] - r["offer_ms"] for r in rows]
audio = [r["first_audio_ms"] - r["offer_ms"] for r in rows if r["first_audio_ms"] is not None]
print(f"{len(rows)} calls; offer -> answer (ms): p50={pct(answer, .5):.1f} p90={pct(answer, .9):.1f} max={max(answer):.1f}")
print(f"offer -> agent audio heard in the browser (ms): n={len(audio)} p50={pct(audio, .5):.1f} p90={pct(audio, .9):.1f} max={max(audio):.1f}")
buckets = []
for line in open(f"{work}/metrics.txt"):
    if line.startswith("voxgate_call_setup_seconds_bucket{") and 'channel="webrtc"' in line:
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
if buckets and buckets[-1][1] > 0:
    total = buckets[-1][1]
    bound = lambda p: next(le for le, n in buckets if n >= p * total) * 1000
    print(f"server offer received -> DTLS connected (ms, bucket bounds): n={int(total)} p50<={bound(.5):.1f} p90<={bound(.9):.1f}")
PY
