"""LiveKit's server API as the tests need it, from LiveKit's own Python
packages (livekit-api, livekit-protocol; installed by scripts/setup.sh into
.test-tools/livekit): an implementation independent of the Rust crate.

  serve KEY SECRET    Twirp on 127.0.0.1 (application/protobuf under /twirp):
                      prints "listening PORT", then one JSON line per request
                      it took ({"method", "request", "grants"}); a request
                      whose bearer token KEY/SECRET did not sign, or whose
                      grants do not allow it, is refused as LiveKit refuses it.
  sign KEY SECRET     a webhook's Authorization for the body on stdin, signed
                      as LiveKit signs it (the body's SHA-256 in the token).
  verify KEY SECRET TOKEN
                      a room token's claims as JSON, or exit 1 if KEY/SECRET
                      did not sign it.
"""

import base64
import hashlib
import json
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from google.protobuf import empty_pb2
from google.protobuf.json_format import MessageToDict
from livekit import api
from livekit.protocol import room, sip

# method -> (request type, the grants it needs, its answer)
def create_sip_participant(req):
    return sip.SIPParticipantInfo(
        participant_id="PA_" + secrets.token_hex(6),
        participant_identity=req.participant_identity,
        room_name=req.room_name,
        sip_call_id="SCL_" + secrets.token_hex(6),
    )


METHODS = {
    "livekit.SIP/CreateSIPParticipant": (
        sip.CreateSIPParticipantRequest,
        lambda c, r: c.sip.call,
        create_sip_participant,
    ),
    "livekit.SIP/TransferSIPParticipant": (
        sip.TransferSIPParticipantRequest,
        lambda c, r: c.sip.call and c.video.room_admin and c.video.room == r.room_name,
        lambda r: empty_pb2.Empty(),
    ),
    "livekit.RoomService/RemoveParticipant": (
        room.RoomParticipantIdentity,
        lambda c, r: c.video.room_admin and c.video.room == r.room,
        lambda r: room.RemoveParticipantResponse(),
    ),
}


def serve(key, secret):
    verifier = api.TokenVerifier(key, secret)

    class Twirp(BaseHTTPRequestHandler):
        def refuse(self, status, code, msg):
            body = json.dumps({"code": code, "msg": msg}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            method = self.path.removeprefix("/twirp/")
            if method not in METHODS:
                return self.refuse(404, "bad_route", "no such method")
            if self.headers.get("Content-Type") != "application/protobuf":
                return self.refuse(400, "malformed", "not application/protobuf")
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            try:
                claims = verifier.verify(token)
            except Exception as e:  # any failure to verify is LiveKit's 401
                return self.refuse(401, "unauthenticated", str(e))
            kind, allowed, answer = METHODS[method]
            req = kind()
            req.ParseFromString(body)
            if not allowed(claims, req):
                return self.refuse(403, "permission_denied", "grants do not allow " + method)
            line = {
                "method": method,
                "request": MessageToDict(req, preserving_proto_field_name=True),
                "grants": {"room": claims.video.room, "room_admin": bool(claims.video.room_admin),
                           "sip_call": bool(claims.sip.call)},
            }
            print(json.dumps(line), flush=True)
            out = answer(req).SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Twirp)
    print("listening", server.server_address[1], flush=True)
    server.serve_forever()


def main():
    command, key, secret = sys.argv[1:4]
    if command == "serve":
        serve(key, secret)
    elif command == "sign":
        body = sys.stdin.buffer.read()
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        print(api.AccessToken(key, secret).with_sha256(digest).to_jwt())
    elif command == "verify":
        token = sys.argv[4]
        claims = api.TokenVerifier(key, secret).verify(token)
        times = jwt.decode(token, options={"verify_signature": False})
        print(json.dumps({"identity": claims.identity, "name": claims.name, "room": claims.video.room,
                          "room_join": bool(claims.video.room_join), "room_admin": bool(claims.video.room_admin),
                          "exp": times["exp"], "nbf": times.get("nbf", 0)}))
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main()
