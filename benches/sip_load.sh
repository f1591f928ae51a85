#!/usr/bin/env bash
# SIP load on loopback: SIPp's built-in caller (INVITE, ACK, BYE) against a
# release `voxgate serve` with the default offline agent. Reports SIPp's
# success/failure counts and the INVITE -> 200 OK response times as SIPp
# sees them (whole milliseconds), and as the server measures them (its
# voxgate_call_setup_seconds histogram: INVITE received -> 200 OK sent).
#
#   benches/sip_load.sh [RATE_CPS] [SECONDS] [CALL_LENGTH_MS]
#
# Needs sipp (apt sip-tester) and `cargo build --release --bin voxgate`.
set -euo pipefail
rate=${1:-100}
seconds=${2:-60}
length=${3:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
keep_results() {
  cp "$work/server.log" /tmp/sip_load_server.log 2>/dev/null
  cp "$work"/*_rtt.csv /tmp/sip_load_rtt.csv 2>/dev/null
}
source "$root/benches/server.sh"
port=$(free_port DGRAM)
cd "$root"
export VOXGATE_SIP__UDP_LISTEN=127.0.0.1:$port VOXGATE_SIP__TCP_LISTEN=127.0.0.1:$port
start_server

calls=$((rate * seconds))
cd "$work"
set +e
sipp -sn uac "127.0.0.1:$port" -s 1000 -i 127.0.0.1 -r "$rate" -m "$calls" -l $((rate * 10)) -d "$length" \
  -timeout $((seconds + 60))s -nostdin -trace_stat -stf stats.csv -trace_rtt -rtt_freq 1 > sipp.out 2>&1
status=$?
set -e
curl -s "http://127.0.0.1:$http/metrics" > metrics.txt || true
python3 - "$status" "$rate" "$seconds" "$length" <<'PY'
import csv, glob, sys
status, rate, seconds, length = sys.argv[1:]
rows = list(csv.reader(open("stats.csv"), delimiter=";"))
head, last = rows[0], rows[-1]
get = lambda name: last[head.index(name)]
print(f"SIPp exit {status}: {get('TotalCallCreated')} calls at {rate}/s for {seconds} s (call length {length} ms): "
      f"{get('SuccessfulCall(C)')} successful, {get('FailedCall(C)')} failed, {get('Retransmissions(C)')} retransmissions")
times = []
for f in glob.glob("*_rtt.csv"):
    for r in list(csv.reader(open(f), delimiter=";"))[1:]:
        try:
            times.append(float(r[1]))
        except (IndexError, ValueError):
            pass
if times:
    times.sort()
    pick = lambda p: times[min(len(times) - 1, int(round(p * (len(times) - 1))))]
    print(f"INVITE -> 200 OK (ms, SIPp resolution 1 ms): n={len(times)} p50={pick(0.5):.3f} p90={pick(0.9):.3f} p99={pick(0.99):.3f} max={times[-1]:.3f}")
# The server's own view: cumulative histogram buckets (upper bounds).
buckets = []
for line in open("metrics.txt"):
    if line.startswith('voxgate_call_setup_seconds_bucket{') and 'channel="sip"' in line:
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
if buckets and buckets[-1][1] > 0:
    total = buckets[-1][1]
    bound = lambda p: next(le for le, n in buckets if n >= p * total) * 1000
    print(f"server INVITE received -> 200 OK sent (ms, histogram bucket bounds): n={int(total)} "
          f"p50<={bound(0.5):.2f} p90<={bound(0.9):.2f} p99<={bound(0.99):.2f}")
PY
# The work after the calls (analytics, billing): how long the queue in the
# database takes to drain after the last call, with [post_call] workers.
python3 - "$work/voxgate.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
start = time.time()
while True:
    counts = dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
    if not counts.get("queued") or time.time() - start > 600:
        break
    time.sleep(0.5)
billed = db.execute("SELECT COUNT(*) FROM billing_records").fetchone()[0]
analysed = db.execute("SELECT COUNT(*) FROM calls WHERE analytics IS NOT NULL").fetchone()[0]
print(f"post-call jobs {counts}, drained {time.time() - start:.1f} s after SIPp finished; "
      f"{analysed} calls analysed, {billed} billed")
PY
