#!/usr/bin/env bash
# The evaluation set (fixtures/agent-tests/eval.toml) on the default offline
# stack: every case once at 16 kHz (JSON stream) and once at 8 kHz (Twilio
# stream, µ-law), through `voxgate test`, judged on the agent's audio as the
# caller heard it. Prints each run's table; keeps the JSON reports.
#
#   benches/agent_eval.sh [OUT_DIR] [FILE]
#
# Other models through the environment, e.g. VOXGATE_MODELS__WHISPER='"whisper-base"'
# (BENCHMARKS.md). Needs `cargo build --release --bin voxgate`. Takes about
# 12 minutes on 2 cores (real-time calls), far too long for CI: the tests run a few cases
# of their own (media-server/tests/agent_tests.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/agent-eval}
file=${2:-$root/fixtures/agent-tests/eval.toml}
mkdir -p "$out"
cd "$root"
bin="${CARGO_TARGET_DIR:-target}/release/voxgate"
for rate in 16000 8000; do
  echo "== $rate Hz"
  "$bin" test --config config.toml --rate "$rate" --json "$out/eval-$rate.json" "$file" | tee "$out/eval-$rate.txt" || true
done
python3 - "$out" <<'PY'
import json, sys
for rate in (16000, 8000):
    r = json.load(open(f"{sys.argv[1]}/eval-{rate}.json"))
    share = 100 * r["fact_turns_passed"] / max(r["fact_turns"], 1)
    print(f"{rate:5d} Hz: facts {r['fact_turns_passed']}/{r['fact_turns']} ({share:.0f} %), cases {r['passed']}/{len(r['cases'])}, "
          f"unanswered {r['unanswered']}, wait p50 {r['wait_p50_ms']} ms, p95 {r['wait_p95_ms']} ms")
PY

