#!/usr/bin/env bash
# The calls API with many records: a release `voxgate serve` on SQLite (the
# default store), CALLS call records written straight into its database,
# then REQUESTS timed requests each of: the first page of `GET /v1/calls`,
# a page deep in the list (by cursor), a filtered page, and one call's
# detail. One client, one keep-alive connection, sequential requests.
#
#   benches/api_load.sh [CALLS] [REQUESTS]
#
# Needs `cargo build --release --bin voxgate` and python3.
set -euo pipefail
calls=${1:-100000}
requests=${2:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/server.sh"
cd "$root"
export VOXGATE_SIP__ENABLED=false VOXGATE_HTTP__API_KEY=bench-key-0123456789 VOXGATE_HTTP__PUBLIC_RATE_LIMIT=0
start_server
python3 - "$work/voxgate.db" "$calls" "$requests" "$http" <<'PY'
import http.client, json, random, sqlite3, statistics, sys, time

db, calls, requests, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
con = sqlite3.connect(db, timeout=30)
tenant = con.execute("SELECT id FROM tenants WHERE name = 'default'").fetchone()[0]
detail = json.dumps({"transcript": [{"speaker": "agent", "text": "Hello, thanks for calling.", "interrupted": False}] * 6,
                     "events": [], "latencies": [], "end": {"reason": "caller_hung_up"}, "duration_ms": 60000,
                     "recorded_ms": 60000, "dropped_frames": 0})
now = int(time.time() * 1000)
channels = ["sip", "webrtc", "websocket", "chat"]
rows = [(f"bench-{i:07d}", tenant, None, None, channels[i % 4], "inbound", "caller_hung_up", "+15550100", "1000",
         now - i * 1000, now - i * 1000 + 60000, 60000, None, detail) for i in range(calls)]
started = time.time()
con.executemany("INSERT INTO calls (id, tenant_id, agent_id, campaign_id, channel, direction, status, caller, callee, "
                "started_at, ended_at, duration_ms, recording, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
con.commit()
print(f"{calls} call records written in {time.time() - started:.1f} s")

conn = http.client.HTTPConnection("127.0.0.1", port)
auth = {"Authorization": "Bearer bench-key-0123456789"}
def get(path):
    t = time.perf_counter()
    conn.request("GET", path, headers=auth)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (path, r.status, body[:200])
    return (time.perf_counter() - t) * 1000, json.loads(body)

# A cursor deep in the list: walk to page 100 once.
_, page = get("/v1/calls?limit=50")
for _ in range(99):
    _, page = get(f"/v1/calls?limit=50&cursor={page['next_cursor']}")
deep = page["next_cursor"]
cases = {
    "first page (50)": lambda: "/v1/calls?limit=50",
    "page 101 by cursor (50)": lambda: f"/v1/calls?limit=50&cursor={deep}",
    "filtered: channel=chat, a day (50)": lambda: f"/v1/calls?limit=50&channel=chat&from={now - 86_400_000}",
    "one call's detail": lambda: f"/v1/calls/bench-{random.randrange(calls):07d}",
}
for name, path in cases.items():
    times = sorted(get(path())[0] for _ in range(requests))
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
    print(f"{name}: n={requests} p50={q(0.5):.2f} ms p90={q(0.9):.2f} ms p99={q(0.99):.2f} ms max={times[-1]:.2f} ms")
PY
