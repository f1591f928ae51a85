#!/usr/bin/env python3
"""INVITE -> 200 OK on loopback at microsecond resolution (SIPp reports whole
milliseconds on a coarse clock). Places N calls one after another against a
running voxgate (INVITE with a PCMU offer, ACK, BYE) and prints percentiles.

    benches/invite_latency.py SIP_PORT [CALLS] [GAP_MS between calls]
"""
import socket
import sys
import time

port = int(sys.argv[1])
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 500
gap = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(5)
me = sock.getsockname()[1]
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rtp.bind(("127.0.0.1", 0))
media = rtp.getsockname()[1]
sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       f"m=audio {media} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def request(method, call, cseq, to, body=""):
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{method} sip:1000@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-{call}-{method}\r\n"
            f"From: <sip:bench@127.0.0.1:{me}>;tag=b{call}\r\nTo: {to}\r\nCall-ID: bench-{call}-{me}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:bench@127.0.0.1:{me}>\r\nMax-Forwards: 70\r\n"
            f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}").encode()


times = []
for call in range(calls):
    to = f"<sip:1000@127.0.0.1:{port}>"
    start = time.perf_counter()
    sock.sendto(request("INVITE", call, 1, to, sdp), ("127.0.0.1", port))
    while True:
        text = sock.recv(65535).decode(errors="replace")
        if text.startswith("SIP/2.0 200") and f"bench-{call}-" in text:
            times.append((time.perf_counter() - start) * 1000)
            to = next(l[4:] for l in text.split("\r\n") if l.startswith("To: "))
            break
    sock.sendto(request("ACK", call, 1, to), ("127.0.0.1", port))
    sock.sendto(request("BYE", call, 2, to), ("127.0.0.1", port))
    while not sock.recv(65535).decode(errors="replace").startswith("SIP/2.0 200"):
        pass
    time.sleep(gap)
times.sort()
pick = lambda p: times[min(len(times) - 1, int(round(p * (len(times) - 1))))]
print(f"INVITE -> 200 OK over {len(times)} sequential calls (ms): p50={pick(0.5):.3f} "
      f"p90={pick(0.9):.3f} p99={pick(0.99):.3f} max={times[-1]:.3f}")
