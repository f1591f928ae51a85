//! Voxgate as the agent of LiveKit rooms, against LiveKit as the tests can
//! have it here: its server API from LiveKit's own Python packages
//! (`tests/livekit/fake_livekit.py`: Twirp decoded with livekit-protocol,
//! every bearer token checked with livekit-api's `TokenVerifier`), and its
//! SIP service played by a proxy that puts the dispatch's headers on the
//! INVITE of a real phone (baresip) or of a caller written here. Webhooks
//! are signed as LiveKit signs them (the body's SHA-256 in a token).

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{API_KEY, Server, TestResult, http, root, start_server};
use serde_json::{Value, json};

const KEY: &str = "APIvoxgatetest";
const SECRET: &str = "a-livekit-secret-of-at-least-thirty-two-bytes";
const TRUNK: &str = "ST_voxgate";

fn tools() -> std::path::PathBuf {
    root().join(".test-tools/livekit")
}

fn python(args: &[&str], stdin: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut child = Command::new("python3")
        .arg(root().join("media-server/tests/livekit/fake_livekit.py"))
        .args(args)
        .env("PYTHONPATH", tools())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("fake_livekit {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// LiveKit's server API on 127.0.0.1: each request it took, decoded.
struct LiveKit {
    child: Child,
    url: String,
    requests: mpsc::Receiver<Value>,
}

impl Drop for LiveKit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LiveKit {
    fn start() -> Result<Self, Box<dyn std::error::Error>> {
        if !tools().join("livekit/api/__init__.py").exists() {
            return Err("livekit-api is not installed: run scripts/setup.sh".into());
        }
        let mut child = Command::new("python3")
            .arg(root().join("media-server/tests/livekit/fake_livekit.py"))
            .args(["serve", KEY, SECRET])
            .env("PYTHONPATH", tools())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        let first = lines.next().ok_or("the fake LiveKit said nothing")??;
        let port = first.strip_prefix("listening ").ok_or("not listening")?.to_owned();
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Ok(Self { child, url: format!("http://127.0.0.1:{port}"), requests })
    }

    /// The next request LiveKit took (10 s at most).
    fn next(&self) -> Result<Value, Box<dyn std::error::Error>> {
        Ok(self.requests.recv_timeout(Duration::from_secs(10)).map_err(|_| "LiveKit got no request")?)
    }

    /// Nothing more reached LiveKit in `wait`.
    fn quiet(&self, wait: Duration) -> Result<(), String> {
        match self.requests.recv_timeout(wait) {
            Ok(v) => Err(format!("LiveKit got {v}")),
            Err(_) => Ok(()),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VOXGATE_LIVEKIT__URL", self.url.clone()),
            ("VOXGATE_LIVEKIT__API_KEY", KEY.to_owned()),
            ("VOXGATE_LIVEKIT__API_SECRET", SECRET.to_owned()),
            ("VOXGATE_LIVEKIT__SIP_TRUNK_ID", TRUNK.to_owned()),
        ]
    }
}

/// Posts `event` to the webhook endpoint as LiveKit would, signed by `secret`.
fn webhook(server: &Server, event: &Value, secret: &str) -> Result<u16, Box<dyn std::error::Error>> {
    let body = event.to_string();
    let auth = python(&["sign", KEY, secret], &body)?;
    post_webhook(server, &body, &auth)
}

fn post_webhook(server: &Server, body: &str, auth: &str) -> Result<u16, Box<dyn std::error::Error>> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST /v1/livekit/webhook HTTP/1.1\r\nHost: {}\r\nContent-Type: application/webhook+json\r\n\
         Authorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn joined(id: &str, room: &str, room_metadata: &str, identity: &str, kind: &str, attributes: Value) -> Value {
    json!({
        "event": "participant_joined", "id": id, "createdAt": "1765000000",
        "room": {"sid": "RM_1", "name": room, "metadata": room_metadata},
        "participant": {"sid": "PA_1", "identity": identity, "kind": kind, "attributes": attributes},
    })
}

fn tenant_of(server: &Server, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (_, me) = http(server, "GET", "/v1/me", Some(key), None)?;
    Ok(me["tenant_id"].as_str().ok_or("no tenant")?.to_owned())
}

/// The dispatch token LiveKit was asked to send, from its CreateSIPParticipant request.
fn dispatch_token(request: &Value) -> Result<String, Box<dyn std::error::Error>> {
    assert_eq!(request["method"], "livekit.SIP/CreateSIPParticipant", "{request}");
    assert_eq!(request["grants"]["sip_call"], true, "{request}");
    Ok(request["request"]["headers"]["X-Voxgate-Dispatch"].as_str().ok_or("no dispatch header")?.to_owned())
}

/// LiveKit's SIP service as Voxgate sees it: a stateless proxy on
/// 127.0.0.1 that forwards a phone's requests to Voxgate with its own Via
/// on top (and `headers` on the INVITE, as LiveKit puts a
/// CreateSIPParticipant's headers on it), and Voxgate's answers back.
/// Runs 90 s at most. Returns its port.
fn sip_service(voxgate: SocketAddr, headers: String) -> std::io::Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let port = socket.local_addr()?.port();
    std::thread::spawn(move || {
        let (started, mut phone, mut buf) = (Instant::now(), None, vec![0u8; 65_536]);
        while started.elapsed() < Duration::from_secs(90) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if from == voxgate {
                // A response: our Via comes off; the phone's is on top again.
                let mut lines: Vec<&str> = text.split("\r\n").collect();
                if let Some(i) = lines.iter().position(|l| l.starts_with("Via:") || l.starts_with("v:")) {
                    lines.remove(i);
                }
                if let Some(phone) = phone {
                    let _ = socket.send_to(lines.join("\r\n").as_bytes(), phone);
                }
            } else {
                phone = Some(from);
                let Some((first, rest)) = text.split_once("\r\n") else { continue };
                let theirs =
                    rest.split("branch=").nth(1).and_then(|b| b.split([';', '\r']).next()).unwrap_or("");
                let mut out =
                    format!("{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKlk{theirs}\r\n");
                if first.starts_with("INVITE ") {
                    out.push_str(&headers);
                }
                out.push_str(rest);
                let _ = socket.send_to(out.as_bytes(), voxgate);
            }
        }
    });
    Ok(port)
}

/// A caller written here sends an INVITE carrying `header`; the final
/// answer's status, the To header with the server's tag, its media port.
fn invite_with(
    server: &Server,
    call_id: &str,
    header: &str,
    rtp: &UdpSocket,
) -> Result<(UdpSocket, u16, String, u16), Box<dyn std::error::Error>> {
    let sip = UdpSocket::bind("127.0.0.1:0")?;
    sip.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (my_port, sip_port) = (sip.local_addr()?.port(), server.sip_port);
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        rtp.local_addr()?.port()
    );
    let to = format!("<sip:1000@127.0.0.1:{sip_port}>");
    let invite = common::caller::request_tagged(
        call_id,
        "t1",
        "INVITE",
        1,
        &to,
        "z9hG4bK-inv",
        sip_port,
        my_port,
        &sdp,
    );
    let (first, rest) = invite.split_once("\r\n").ok_or("a request")?;
    sip.send_to(format!("{first}\r\n{header}\r\n{rest}").as_bytes(), ("127.0.0.1", sip_port))?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sip.recv(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status < 200 {
            continue;
        }
        let to = text.lines().find_map(|l| l.strip_prefix("To: ")).unwrap_or_default().to_owned();
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|l| l.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        return Ok((sip, status, to, port));
    }
}

/// Waits (20 s at most) for the server's BYE on `sip`, and answers it.
fn hung_up(sip: &UdpSocket) -> TestResult {
    let mut buf = vec![0u8; 8192];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let Ok((n, from)) = sip.recv_from(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("BYE ") {
            let echoed: String = text
                .split("\r\n")
                .filter(|l| ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].iter().any(|h| l.starts_with(h)))
                .map(|l| format!("{l}\r\n"))
                .collect();
            sip.send_to(format!("SIP/2.0 200 OK\r\n{echoed}Content-Length: 0\r\n\r\n").as_bytes(), from)?;
            return Ok(());
        }
    }
    Err("the server never hung up".into())
}

#[test]
fn a_dispatched_agent_answers_a_phone_caller_in_the_room() -> TestResult {
    let livekit = LiveKit::start()?;
    let server = start_server(&livekit.env())?;
    let tenant = tenant_of(&server, API_KEY)?;
    let (status, dispatched) =
        http(&server, "POST", "/v1/livekit/dispatch", Some(API_KEY), Some(r#"{"room": "front-desk"}"#))?;
    assert_eq!(status, 201, "{dispatched}");
    let room = format!("{tenant}-front-desk");
    assert_eq!(dispatched["room"], room.as_str());

    // LiveKit is asked to dial the agent's number through the trunk to Voxgate.
    let asked = livekit.next()?;
    let token = dispatch_token(&asked)?;
    let request = &asked["request"];
    assert_eq!(
        (request["sip_trunk_id"].as_str(), request["sip_call_to"].as_str()),
        (Some(TRUNK), Some("1000"))
    );
    assert_eq!(request["room_name"], room.as_str());
    assert_eq!(request["participant_identity"], dispatched["participant_identity"]);
    assert!(token.len() >= 32, "a guessable token: {token}");
    // A second agent for the same room is refused.
    let (status, _) =
        http(&server, "POST", "/v1/livekit/dispatch", Some(API_KEY), Some(r#"{"room": "front-desk"}"#))?;
    assert_eq!(status, 409);

    // LiveKit's SIP service places the call; the caller in the room asks and listens.
    let voxgate = SocketAddr::from(([127, 0, 0, 1], server.sip_port));
    let proxy = sip_service(voxgate, format!("X-Voxgate-Dispatch: {token}\r\n"))?;
    let work = std::env::temp_dir().join(format!("voxgate-livekit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let text = common::heard::ask_by_phone(&work, &format!("sip:1000@127.0.0.1:{proxy}"))?;
    let log = common::call_log(&server)?;
    assert!(
        text.contains('9') || text.contains("nine"),
        "no answer in what the room heard: {text}\nthe call's transcript: {:#}",
        log["transcript"]
    );
    assert_eq!(
        (log["room"].as_str(), log["channel"].as_str()),
        (Some(room.as_str()), Some("sip")),
        "{log:#}"
    );
    assert!(log["recording"] == true, "{log:#}");

    // The token worked once: the same INVITE again is refused.
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    let (_, status, _, _) = invite_with(&server, "replayed", &format!("X-Voxgate-Dispatch: {token}"), &rtp)?;
    assert_eq!(status, 403, "a used dispatch token");
    let (_, status, _, _) = invite_with(&server, "guessed", "X-Voxgate-Dispatch: 00", &rtp)?;
    assert_eq!(status, 403, "an unknown dispatch token");
    Ok(())
}

#[test]
fn livekit_webhooks_are_verified_and_drive_dispatch_transfer_and_hang_up() -> TestResult {
    let livekit = LiveKit::start()?;
    let llm = common::tool_calling_llm("Let me connect you to a colleague.", "transfer_to_human", "{}")?;
    let mut env = livekit.env();
    env.extend([
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__GREETING", String::new()),
        ("VOXGATE_AGENT__LLM", "openai".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
        ("VOXGATE_OPENAI__API_KEY", "test-key".to_owned()),
        ("VOXGATE_AGENT__TRANSFER_TO", r#""+15550100""#.to_owned()),
        common::turn_log(),
    ]);
    let server = start_server(&env)?;
    let tenant = tenant_of(&server, API_KEY)?;
    let (_, health) = http(&server, "GET", "/healthz", None, None)?;
    let wants_agent = json!({"voxgate_agent": health["agent"]["name"]}).to_string();
    let lobby = format!("{tenant}-lobby");
    let caller = joined("EV_1", &lobby, &wants_agent, "sip_+15550111", "SIP", json!({}));

    // Not LiveKit's: unsigned, signed by another key, or altered after signing.
    let evil = joined("EV_0", &format!("{tenant}-evil"), &wants_agent, "x", "STANDARD", json!({}));
    assert_eq!(post_webhook(&server, &evil.to_string(), "")?, 401);
    assert_eq!(webhook(&server, &evil, "another-secret-of-at-least-thirty-two-bytes")?, 401);
    let auth = python(&["sign", KEY, SECRET], &caller.to_string())?;
    assert_eq!(post_webhook(&server, &evil.to_string(), &auth)?, 401, "a body the token does not hash");
    // Voxgate's own participant never asks for an agent (no loops).
    let ours =
        joined("EV_2", &lobby, &wants_agent, "voxgate-lkd_1", "SIP", json!({"voxgate.dispatch": "lkd_1"}));
    assert_eq!(webhook(&server, &ours, SECRET)?, 200);
    livekit.quiet(Duration::from_secs(2))?;

    // A SIP caller joins a room whose metadata names the agent: it is dispatched, once.
    assert_eq!(post_webhook(&server, &caller.to_string(), &auth)?, 200);
    let token = dispatch_token(&livekit.next()?)?;
    assert_eq!(webhook(&server, &caller, SECRET)?, 200, "LiveKit delivers it again");
    livekit.quiet(Duration::from_secs(2))?;

    // The dispatched call asks for a person: the room moves its caller, and the agent leaves.
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    let (sip, status, to, media_port) =
        invite_with(&server, "lk-transfer", &format!("X-Voxgate-Dispatch: {token}"), &rtp)?;
    assert_eq!(status, 200);
    let my_port = sip.local_addr()?.port();
    let ack = common::caller::request_tagged(
        "lk-transfer",
        "t1",
        "ACK",
        1,
        &to,
        "z9hG4bK-a",
        server.sip_port,
        my_port,
        "",
    );
    sip.send_to(ack.as_bytes(), ("127.0.0.1", server.sip_port))?;
    common::caller::press(&rtp, media_port, &[1])?;
    common::logged(&server, "caller's turn committed", 1)?;
    let moved = livekit.next()?;
    assert_eq!(moved["method"], "livekit.SIP/TransferSIPParticipant", "{moved}");
    assert_eq!(moved["request"]["participant_identity"], "sip_+15550111");
    assert_eq!(moved["request"]["transfer_to"], "tel:+15550100");
    assert_eq!(
        (moved["request"]["room_name"].as_str(), moved["grants"]["room"].as_str()),
        (Some(lobby.as_str()), Some(lobby.as_str()))
    );
    hung_up(&sip)?;
    let left = livekit.next()?;
    assert_eq!(left["method"], "livekit.RoomService/RemoveParticipant", "{left}");
    assert!(left["request"]["identity"].as_str().is_some_and(|i| i.starts_with("voxgate-lkd_")), "{left}");
    let log = common::call_log(&server)?;
    assert_eq!(
        (log["room"].as_str(), log["status"].as_str()),
        (Some(lobby.as_str()), Some("transferred")),
        "{log:#}"
    );

    // A finished room ends its call.
    let (status, _) =
        http(&server, "POST", "/v1/livekit/dispatch", Some(API_KEY), Some(r#"{"room": "desk"}"#))?;
    assert_eq!(status, 201);
    let token = dispatch_token(&livekit.next()?)?;
    let (sip, status, to, _) =
        invite_with(&server, "lk-finished", &format!("X-Voxgate-Dispatch: {token}"), &rtp)?;
    assert_eq!(status, 200);
    let ack = common::caller::request_tagged(
        "lk-finished",
        "t1",
        "ACK",
        1,
        &to,
        "z9hG4bK-b",
        server.sip_port,
        sip.local_addr()?.port(),
        "",
    );
    sip.send_to(ack.as_bytes(), ("127.0.0.1", server.sip_port))?;
    let finished =
        json!({"event": "room_finished", "id": "EV_3", "room": {"name": format!("{tenant}-desk")}});
    assert_eq!(webhook(&server, &finished, SECRET)?, 200);
    hung_up(&sip)?;
    Ok(())
}

#[test]
fn a_tenant_dispatches_and_mints_tokens_only_in_its_own_rooms() -> TestResult {
    let livekit = LiveKit::start()?;
    let server = start_server(&livekit.env())?;
    let mut keys = Vec::new();
    for (email, tenant) in [("ann@acme.example", "acme"), ("bob@globex.example", "globex")] {
        keys.push(common::tenant_admin(&server, email, "admin-password-1", tenant)?);
    }
    let (ann, bob) = (keys[0].as_str(), keys[1].as_str());
    let (acme, globex) = (tenant_of(&server, ann)?, tenant_of(&server, bob)?);
    let give = json!({"number": "+15550300", "tenant_id": acme}).to_string();
    assert_eq!(http(&server, "POST", "/v1/numbers", Some(API_KEY), Some(&give))?.0, 201);
    let (status, agent) = http(
        &server,
        "POST",
        "/v1/agents",
        Some(ann),
        Some(r#"{"name": "Acme desk", "numbers": ["+15550300"]}"#),
    )?;
    assert_eq!(status, 201, "{agent}");
    let agent = agent["id"].as_str().ok_or("no id")?.to_owned();

    // Room tokens: for the tenant's own room, briefly, checked by LiveKit's own verifier.
    let ask = json!({"room": "sales", "identity": "web-visitor-1"}).to_string();
    let (status, minted) = http(&server, "POST", "/v1/livekit/token", Some(ann), Some(&ask))?;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["url"], livekit.url.as_str());
    let claims: Value = serde_json::from_str(&python(
        &["verify", KEY, SECRET, minted["token"].as_str().ok_or("no token")?],
        "",
    )?)?;
    assert_eq!(
        (claims["room"].as_str(), claims["room_join"].as_bool()),
        (Some(format!("{acme}-sales").as_str()), Some(true))
    );
    assert_eq!(
        (claims["identity"].as_str(), claims["room_admin"].as_bool()),
        (Some("web-visitor-1"), Some(false))
    );
    let lasts = claims["exp"].as_u64().unwrap_or(0).saturating_sub(claims["nbf"].as_u64().unwrap_or(0));
    assert!((1..=600).contains(&lasts), "a token for {lasts} s");
    assert!(
        python(
            &[
                "verify",
                KEY,
                "another-secret-of-at-least-thirty-two-bytes",
                minted["token"].as_str().unwrap_or("")
            ],
            ""
        )
        .is_err()
    );
    for bad in [r#"{"room": "../x", "identity": "a"}"#, r#"{"room": "sales", "identity": "voxgate-lkd_1"}"#] {
        assert_eq!(http(&server, "POST", "/v1/livekit/token", Some(ann), Some(bad))?.0, 422, "{bad}");
    }

    // Another tenant's agent is as unknown as a missing one; no agent named is not the configured one.
    let theirs = json!({"room": "sales", "agent": agent}).to_string();
    assert_eq!(http(&server, "POST", "/v1/livekit/dispatch", Some(bob), Some(&theirs))?.0, 404);
    assert_eq!(
        http(&server, "POST", "/v1/livekit/dispatch", Some(bob), Some(r#"{"room": "sales"}"#))?.0,
        422
    );
    livekit.quiet(Duration::from_secs(1))?;
    let (status, dispatched) = http(&server, "POST", "/v1/livekit/dispatch", Some(ann), Some(&theirs))?;
    assert_eq!(status, 201, "{dispatched}");
    let asked = livekit.next()?;
    dispatch_token(&asked)?;
    assert_eq!(
        (asked["request"]["room_name"].as_str(), asked["request"]["sip_call_to"].as_str()),
        (Some(format!("{acme}-sales").as_str()), Some("+15550300"))
    );

    // A webhook from a room of Globex's that names Acme's agent dispatches nothing; Acme's own room does.
    let names = json!({"voxgate_agent": agent}).to_string();
    let foreign = joined("EV_10", &format!("{globex}-sales"), &names, "sip_1", "SIP", json!({}));
    assert_eq!(webhook(&server, &foreign, SECRET)?, 200);
    livekit.quiet(Duration::from_secs(2))?;
    let own = joined("EV_11", &format!("{acme}-support"), &names, "sip_2", "SIP", json!({}));
    assert_eq!(webhook(&server, &own, SECRET)?, 200);
    assert_eq!(livekit.next()?["request"]["room_name"], format!("{acme}-support"));
    Ok(())
}
