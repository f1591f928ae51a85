//! SIP as an attacker sends it, at a running server:
//! - a stranger who knows a call's Call-ID (it travels in every message, so
//!   a proxy, a log or a capture gives it away) tries to end the call,
//!   inject key presses and take the call over with a re-INVITE. A request
//!   belongs to a call only with both dialog tags (RFC 3261 §12.2.2): the
//!   stranger gets 481 each time and the call goes on;
//! - callers who reuse or collide a Call-ID (`a@b`, then `a_b`, then `a@b`
//!   again) each get a call of their own: its own server id, record and
//!   recording, the Call-ID kept only as an attribute;
//! - a caller outside the trusted networks is challenged (SHA-256 offered
//!   before MD5), gets in with the right password, and a captured
//!   authorised INVITE sent again is refused;
//! - media: nothing is sent before the caller's ACK, and a stranger who
//!   sends RTP to the call's port first, from another address, neither
//!   takes the media nor reaches the call.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::caller::{call, call_as, hang_up, hang_up_as, press};
use common::{
    API_KEY, TestResult, caller_lines, http, lines, recording, start_listening_server, start_server,
    url_escape,
};
use voxgate_sip_bridge::auth;

/// A request of the test call's Call-ID with the tags the stranger chose.
fn forged(method: &str, from_tag: &str, to: &str, sip_port: u16, my_port: u16, body: &str) -> String {
    let content_type = match method {
        "INFO" => "Content-Type: application/dtmf-relay\r\n",
        "INVITE" => "Content-Type: application/sdp\r\n",
        _ => "",
    };
    format!(
        "{method} sip:1000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{my_port};branch=z9hG4bK-evil-{method}-{from_tag}\r\n\
         From: <sip:tester@127.0.0.1:{my_port}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: rfc4733-test\r\nCSeq: 7 {method}\r\n\
         Contact: <sip:evil@127.0.0.1:{my_port}>\r\nMax-Forwards: 70\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_strangers_requests_in_a_call_get_481_and_the_call_goes_on() -> TestResult {
    let server = start_listening_server()?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    let (sip, to_tagged, media_port) = call(&server, &rtp, "0 101")?;
    let sip_port = server.sip_port;

    let stranger = UdpSocket::bind("127.0.0.1:0")?;
    stranger.set_read_timeout(Some(Duration::from_secs(5)))?;
    let my_port = stranger.local_addr()?.port();
    let untagged = format!("<sip:1000@127.0.0.1:{sip_port}>");
    let guessed = format!("{untagged};tag=vg00000001");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {my_port} RTP/AVP 0\r\n"
    );
    // The caller's tag is t1 (common::caller); the server's is in `to_tagged`.
    let attempts = [
        ("BYE", "t2", to_tagged.as_str(), ""), // the server's tag, not the caller's
        ("BYE", "t1", untagged.as_str(), ""),  // the caller's tag, not the server's
        ("BYE", "t1", guessed.as_str(), ""),   // a guessed server tag
        ("INFO", "t2", to_tagged.as_str(), "Signal=9\r\nDuration=160\r\n"), // a key press injected
        ("INVITE", "t2", to_tagged.as_str(), sdp.as_str()), // the media moved to the stranger
    ];
    let mut buf = vec![0u8; 8192];
    for (method, from_tag, to, body) in attempts {
        stranger.send_to(
            forged(method, from_tag, to, sip_port, my_port, body).as_bytes(),
            ("127.0.0.1", sip_port),
        )?;
        let n = stranger.recv(&mut buf)?;
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("SIP/2.0 481"), "{method} from tag {from_tag} to {to}: {answer}");
    }

    // The call is still the caller's: their keys are heard, the stranger's 9 is not.
    press(&rtp, media_port, &[4, 2, 11])?;
    common::logged(&server, "caller's turn committed", 1)?;
    hang_up(&server, &sip, &to_tagged)?;
    assert_eq!(caller_lines(&server)?, ["42"]);
    Ok(())
}

/// An INVITE from `port` to the demo number, with `authorization` if any.
fn invite(sip_port: u16, port: u16, cseq: u32, authorization: Option<&str>) -> String {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        port + 2
    );
    let authorization = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:1000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-auth-{cseq}\r\n\
         From: <sip:alice@127.0.0.1:{port}>;tag=a1\r\nTo: <sip:1000@127.0.0.1:{sip_port}>\r\nCall-ID: digest-test\r\n\
         CSeq: {cseq} INVITE\r\nContact: <sip:alice@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{authorization}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Reads SIP messages until a final response; returns it.
fn final_response(socket: &UdpSocket) -> Result<String, Box<dyn std::error::Error>> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = socket.recv(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status: u16 = text.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
        if text.starts_with("SIP/2.0 ") && status >= 200 {
            return Ok(text);
        }
    }
}

fn headers<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn an_untrusted_caller_answers_a_sha_256_challenge_once_and_a_replay_is_refused() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_SIP__TRUSTED", "[]".to_owned()),
        ("VOXGATE_SIP__USERS", r#"["alice:s3cret"]"#.to_owned()),
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__GREETING", String::new()),
    ])?;
    let sip_port = server.sip_port;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let port = socket.local_addr()?.port();
    let send = |text: &str| socket.send_to(text.as_bytes(), ("127.0.0.1", sip_port));

    send(&invite(sip_port, port, 1, None))?;
    let challenge = final_response(&socket)?;
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let offered = headers(&challenge, "WWW-Authenticate");
    assert_eq!(offered.len(), 2, "{challenge}");
    assert!(offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"), "{offered:?}");

    let uri = format!("sip:1000@127.0.0.1:{sip_port}");
    let wrong = auth::answer(offered[0], "INVITE", &uri, "alice", "guess", 1).ok_or("no answer")?;
    send(&invite(sip_port, port, 2, Some(&wrong)))?;
    let refused = final_response(&socket)?;
    assert!(refused.starts_with("SIP/2.0 401") && !refused.contains("stale=true"), "{refused}");

    let right = auth::answer(offered[0], "INVITE", &uri, "alice", "s3cret", 1).ok_or("no answer")?;
    let authorised = invite(sip_port, port, 3, Some(&right));
    send(&authorised)?;
    let answered = final_response(&socket)?;
    assert!(answered.starts_with("SIP/2.0 200"), "{answered}");
    let to = headers(&answered, "To").first().copied().ok_or("no To")?.to_owned();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:1000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{method}-{cseq}\r\n\
             From: <sip:alice@127.0.0.1:{port}>;tag=a1\r\nTo: {to}\r\nCall-ID: digest-test\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    send(&in_dialog("ACK", 3))?;
    send(&in_dialog("BYE", 4))?;
    assert!(final_response(&socket)?.starts_with("SIP/2.0 200"), "the BYE");

    // Someone who captured the authorised INVITE sends it again.
    std::thread::sleep(Duration::from_millis(500));
    send(&authorised)?;
    let replayed = final_response(&socket)?;
    assert!(replayed.starts_with("SIP/2.0 401") && replayed.contains("stale=true"), "{replayed}");
    Ok(())
}

#[test]
fn callers_who_reuse_or_collide_a_call_id_each_get_their_own_call() -> TestResult {
    let server = start_listening_server()?;
    // One call after another: each presses its own key, then hangs up.
    let calls = [("a@b", 1u8, "1"), ("a_b", 2, "2"), ("a@b", 3, "3")];
    for (n, &(call_id, key, _)) in calls.iter().enumerate() {
        let rtp = UdpSocket::bind("127.0.0.1:0")?;
        let (sip, to_tagged, media_port) = call_as(call_id, &server, &rtp, "0 101")?;
        press(&rtp, media_port, &[key, 11])?;
        common::logged(&server, "caller's turn committed", 1)?;
        hang_up_as(call_id, &server, &sip, &to_tagged)?;
        // Until its record is written.
        for _ in 0..100 {
            let (_, list) = http(&server, "GET", "/v1/calls", Some(API_KEY), None)?;
            let listed = list["calls"].as_array().map_or(0, Vec::len);
            if listed == n + 1 && list["calls"][0]["status"] != "in_progress" {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (status, list) = http(&server, "GET", "/v1/calls", Some(API_KEY), None)?;
    assert_eq!(status, 200, "{list}");
    let listed = list["calls"].as_array().ok_or("no calls")?;
    assert_eq!(listed.len(), 3, "{list}");
    // Newest first: the calls in reverse.
    let mut ids = Vec::new();
    for (row, &(call_id, _, pressed)) in listed.iter().zip(calls.iter().rev()) {
        let id = row["id"].as_str().ok_or("no id")?;
        assert!(id.starts_with("call_") && id.len() > 20, "{id}");
        assert_eq!(row["external_id"], call_id, "{row}");
        let (_, call) = http(&server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(API_KEY), None)?;
        assert_eq!(lines(&call, "caller")?, [pressed], "{id} ({call_id}): {call}");
        let wav = recording(&server, id, API_KEY)?;
        assert!(wav.starts_with(b"RIFF"), "{id} has its own recording");
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three calls, three ids");
    Ok(())
}

#[test]
fn two_callers_with_one_call_id_at_once_each_get_their_own_call() -> TestResult {
    use common::caller::{call_tagged, hang_up_tagged};
    let server = start_listening_server()?;
    let (rtp_a, rtp_b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    // Both up at once, with the same Call-ID and their own tags.
    let (sip_a, to_a, media_a) = call_tagged("same@host", "caller-a", &server, &rtp_a, "0 101")?;
    let (sip_b, to_b, media_b) = call_tagged("same@host", "caller-b", &server, &rtp_b, "0 101")?;
    assert_ne!(media_a, media_b, "two calls, two media ports");
    press(&rtp_a, media_a, &[1, 11])?;
    press(&rtp_b, media_b, &[2, 11])?;
    common::logged(&server, "caller's turn committed", 2)?;
    hang_up_tagged("same@host", "caller-a", &server, &sip_a, &to_a)?;
    hang_up_tagged("same@host", "caller-b", &server, &sip_b, &to_b)?;
    let mut listed = Vec::new();
    for _ in 0..100 {
        let (_, list) = http(&server, "GET", "/v1/calls", Some(API_KEY), None)?;
        listed = list["calls"].as_array().cloned().unwrap_or_default();
        if listed.len() == 2 && listed.iter().all(|c| c["status"] == "caller_hung_up") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    let mut pressed = Vec::new();
    for row in &listed {
        assert_eq!(
            (row["external_id"].as_str(), row["status"].as_str()),
            (Some("same@host"), Some("caller_hung_up"))
        );
        let id = row["id"].as_str().ok_or("no id")?;
        let (_, call) = http(&server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(API_KEY), None)?;
        pressed.extend(lines(&call, "caller")?);
    }
    pressed.sort();
    assert_eq!(pressed, ["1", "2"], "each call heard its own caller");
    Ok(())
}

/// Reads RTP packets at `socket` for `ms`; how many came.
fn rtp_within(socket: &UdpSocket, ms: u64) -> Result<usize, Box<dyn std::error::Error>> {
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while std::time::Instant::now() < until {
        if let Ok((len, _)) = socket.recv_from(&mut buf)
            && len >= 12
        {
            n += 1;
        }
    }
    Ok(n)
}

#[test]
fn no_media_goes_out_before_the_ack_and_a_first_stranger_does_not_take_the_call() -> TestResult {
    use common::caller::{ack_tagged, invite_tagged};
    // An agent that greets at once (scripted voice, a tone): its RTP is what is watched.
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__STT", "scripted".to_owned()),
        ("VOXGATE_AGENT__LLM", "scripted".to_owned()),
        ("VOXGATE_AGENT__TTS", "scripted".to_owned()),
        ("VOXGATE_AGENT__KNOWLEDGE", String::new()),
        ("VOXGATE_AGENT__GREETING", "Hello, you are through to the desk.".to_owned()),
        common::turn_log(),
    ])?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    let call_id = "media-before-ack";
    let (sip, to_tagged, media_port) = invite_tagged(call_id, "t1", &server, &rtp, "0 101")?;
    // Answered, not yet acknowledged: the agent's greeting waits.
    assert_eq!(rtp_within(&rtp, 700)?, 0, "RTP before the ACK");
    // A stranger on another address (127.0.0.2) sends first: a key press and audio.
    let stranger = UdpSocket::bind("127.0.0.2:0")?;
    let mut key = vec![0x80, 101, 0, 1, 0, 0, 0, 0, 0, 0, 0x99, 0x99];
    key.extend_from_slice(&[9, 0x80 | 10, 0x01, 0x40]);
    for _ in 0..5 {
        stranger.send_to(&key, ("127.0.0.1", media_port))?;
    }
    ack_tagged(call_id, "t1", &server, &sip, &to_tagged)?;
    // After the ACK the greeting comes to the SDP's address, not to the stranger.
    assert!(rtp_within(&rtp, 1500)? > 10, "the caller hears the agent");
    assert_eq!(rtp_within(&stranger, 200)?, 0, "the stranger took the media");
    press(&rtp, media_port, &[4, 2, 11])?;
    common::logged(&server, "caller's turn committed", 1)?;
    common::caller::hang_up_as(call_id, &server, &sip, &to_tagged)?;
    assert_eq!(caller_lines(&server)?, ["42"], "only the caller's keys reached the call");
    Ok(())
}
