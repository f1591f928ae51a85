#!/usr/bin/env bash
# Builds the seed corpora in fuzz/corpus/<target>/ (git-ignored) from real
# messages: the RFC 4475/5118 SIP torture messages (../shared/conformance),
# the SDP bodies in them and in this repository's SIPp scenarios, and RTP,
# RTCP and RFC 4733 packets as real peers send them.
#
#   fuzz/seeds.sh [OUT_DIR]        (default fuzz/corpus)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
torture=${SIP_TORTURE:-$here/../../shared/conformance/sip-torture}
[ -f "$torture/MANIFEST.tsv" ] || { echo "seeds.sh: no SIP torture corpus at $torture (set SIP_TORTURE)" >&2; exit 1; }
python3 - "${1:-$here/corpus}" "$torture" "$here/../media-server/tests/sipp" "$here/../fixtures/audio" <<'PY'
import os, pathlib, re, struct, sys
out, torture, scenarios, fixtures = map(pathlib.Path, sys.argv[1:])
def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
# SIP: every torture message; the SDP bodies they carry.
for f in sorted(torture.glob("*.sip")):
    data = f.read_bytes()
    put("sip_message", f.stem, data)
    head, sep, body = data.partition(b"\r\n\r\n")
    if b"v=0" in body:
        put("sdp", f.stem, body)
# SDP from the SIPp scenarios' CDATA blocks, with SIPp's [keywords] filled in.
for f in sorted(scenarios.glob("*.xml")):
    for i, block in enumerate(re.findall(r"<!\[CDATA\[(.*?)\]\]>", f.read_text(), re.S)):
        if "v=0" not in block:
            continue
        body = "\r\n".join(l.strip() for l in block.split("v=0", 1)[1].strip().splitlines())
        body = re.sub(r"\[[a-z_]+\]", lambda m: {"[local_ip_type]": "4", "[media_ip_type]": "4",
                      "[media_port]": "40000"}.get(m.group(0), "127.0.0.1"), "v=0\r\n" + body + "\r\n")
        put("sdp", f"{f.stem}-{i}", body.encode())
# RTP: PCMU and telephone-event packets, one with a CSRC, an extension and padding.
rtp = lambda pt, seq, ts, payload, m=0: struct.pack("!BBHII", 0x80, (m << 7) | pt, seq, ts, 0x1234ABCD) + payload
put("rtp", "pcmu", rtp(0, 1, 160, bytes([0xFF]) * 160))
put("rtp", "dtmf", rtp(101, 2, 320, bytes([5, 0x0A, 0x00, 0xA0]), 1))
put("rtp", "csrc-ext-pad", struct.pack("!BBHIII", 0xB1, 0, 3, 480, 1, 2) + struct.pack("!HH", 0xBEDE, 1) + b"\x10\xAA\x00\x00" + b"\x00" * 20 + b"\x00\x00\x00\x04")
# RTCP: a sender report with one report block, and an SDES with a CNAME.
sr = struct.pack("!BBHIIIIII", 0x81, 200, 12, 0x1234ABCD, 0xE0000000, 0, 160, 10, 1600) + struct.pack("!IIIIII", 0x5678, 0, 0, 0, 0, 0)
cname = b"\x01\x09voxgate@1\x00\x00"
sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(cname)) // 4, 0x1234ABCD) + cname
put("rtcp", "sr-sdes", sr + sdes)
put("rtcp", "rr", struct.pack("!BBHI", 0x80, 201, 1, 0x5678))
# RFC 4733: digit 5, end bit, volume 10, 160 ms; a start of '#'.
put("rfc4733", "five-end", bytes([5, 0x8A, 0x05, 0x00]))
put("rfc4733", "hash", bytes([11, 0x0A, 0x00, 0xA0]))
# WAV: each fixture's header and first samples, and one cut mid-header.
for f in sorted(fixtures.glob("*.wav"))[:6]:
    data = f.read_bytes()
    put("wav", f.stem, data[:512])
    put("wav", f.stem + "-cut", data[:30])
# Websocket media: a Twilio Media Streams call and a plain JSON one, a message a line.
import base64, json
ulaw = base64.b64encode(bytes([0xFF]) * 160).decode()
pcm = base64.b64encode(bytes(640)).decode()
twilio = [{"event": "connected", "protocol": "Call", "version": "1.0.0"},
          {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {"streamSid": "MZ1", "callSid": "CA1",
           "tracks": ["inbound"], "customParameters": {"agent": "a1"},
           "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
          {"event": "media", "streamSid": "MZ1", "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": ulaw}},
          {"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "5"}},
          {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m1"}},
          {"event": "stop", "streamSid": "MZ1", "stop": {"callSid": "CA1"}}]
plain = [{"type": "start", "session_id": "s1", "agent": "a1"}, {"type": "media", "data": pcm, "format": "pcm_16k"},
         {"type": "dtmf", "digit": "#"}, {"type": "mark", "name": "m1"}, {"type": "stop"}]
put("websocket", "twilio", "\n".join(json.dumps(m) for m in twilio).encode())
put("websocket", "json", "\n".join(json.dumps(m) for m in plain).encode())
print(sum(1 for _ in out.rglob("*") if _.is_file()), "seed files in", out)
PY
