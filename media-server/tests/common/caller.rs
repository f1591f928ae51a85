//! A SIP caller written in the test: raw SIP over UDP and RTP on loopback,
//! so a test controls every header (a stranger's forged ones too).

use std::net::UdpSocket;
use std::time::Duration;

use super::TestResult;

/// The Call-ID of [`call`]'s calls.
pub const CALL_ID: &str = "rfc4733-test";

pub fn request(
    method: &str,
    cseq: u32,
    to: &str,
    branch: &str,
    sip_port: u16,
    my_port: u16,
    body: &str,
) -> String {
    request_as(CALL_ID, method, cseq, to, branch, sip_port, my_port, body)
}

/// [`request`] in the call `call_id`.
#[allow(clippy::too_many_arguments)]
pub fn request_as(
    call_id: &str,
    method: &str,
    cseq: u32,
    to: &str,
    branch: &str,
    sip_port: u16,
    my_port: u16,
    body: &str,
) -> String {
    request_tagged(call_id, "t1", method, cseq, to, branch, sip_port, my_port, body)
}

/// [`request_as`] with the caller's tag `from_tag`.
#[allow(clippy::too_many_arguments)]
pub fn request_tagged(
    call_id: &str,
    from_tag: &str,
    method: &str,
    cseq: u32,
    to: &str,
    branch: &str,
    sip_port: u16,
    my_port: u16,
    body: &str,
) -> String {
    let content_type = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    format!(
        "{method} sip:1000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{my_port};branch={branch}\r\n\
         From: <sip:tester@127.0.0.1:{my_port}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:tester@127.0.0.1:{my_port}>\r\nMax-Forwards: 70\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Calls the server from `rtp` with `sdp_tail` after the m= line; returns the
/// SIP socket, the To header with the server's tag, and the server's media port.
pub fn call(
    server: &super::Server,
    rtp: &UdpSocket,
    payload_types: &str,
) -> Result<(UdpSocket, String, u16), Box<dyn std::error::Error>> {
    call_as(CALL_ID, server, rtp, payload_types)
}

/// [`call`] with the SIP Call-ID `call_id`.
pub fn call_as(
    call_id: &str,
    server: &super::Server,
    rtp: &UdpSocket,
    payload_types: &str,
) -> Result<(UdpSocket, String, u16), Box<dyn std::error::Error>> {
    call_tagged(call_id, "t1", server, rtp, payload_types)
}

/// [`call_as`] with the caller's tag `from_tag`.
pub fn call_tagged(
    call_id: &str,
    from_tag: &str,
    server: &super::Server,
    rtp: &UdpSocket,
    payload_types: &str,
) -> Result<(UdpSocket, String, u16), Box<dyn std::error::Error>> {
    let (sip, to_tagged, media_port) = invite_tagged(call_id, from_tag, server, rtp, payload_types)?;
    ack_tagged(call_id, from_tag, server, &sip, &to_tagged)?;
    Ok((sip, to_tagged, media_port))
}

/// The INVITE of [`call_tagged`], answered but not acknowledged: the SIP
/// socket, the To header with the server's tag, and the server's media port.
pub fn invite_tagged(
    call_id: &str,
    from_tag: &str,
    server: &super::Server,
    rtp: &UdpSocket,
    payload_types: &str,
) -> Result<(UdpSocket, String, u16), Box<dyn std::error::Error>> {
    let sip = UdpSocket::bind("127.0.0.1:0")?;
    sip.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (my_port, rtp_port, sip_port) = (sip.local_addr()?.port(), rtp.local_addr()?.port(), server.sip_port);
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {payload_types}\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    let to = format!("<sip:1000@127.0.0.1:{sip_port}>");
    sip.send_to(
        request_tagged(call_id, from_tag, "INVITE", 1, &to, "z9hG4bK-inv", sip_port, my_port, &sdp)
            .as_bytes(),
        ("127.0.0.1", sip_port),
    )?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sip.recv(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            let to = text.lines().find_map(|l| l.strip_prefix("To: ")).ok_or("no To")?.to_owned();
            let port: u16 = text
                .lines()
                .find_map(|l| l.strip_prefix("m=audio "))
                .and_then(|l| l.split(' ').next())
                .ok_or("no m=audio")?
                .parse()?;
            return Ok((sip, to, port));
        }
    }
}

/// The ACK of an answered [`invite_tagged`].
pub fn ack_tagged(
    call_id: &str,
    from_tag: &str,
    server: &super::Server,
    sip: &UdpSocket,
    to_tagged: &str,
) -> TestResult {
    let (sip_port, my_port) = (server.sip_port, sip.local_addr()?.port());
    sip.send_to(
        request_tagged(call_id, from_tag, "ACK", 1, to_tagged, "z9hG4bK-ack", sip_port, my_port, "")
            .as_bytes(),
        ("127.0.0.1", sip_port),
    )?;
    Ok(())
}

pub fn hang_up(server: &super::Server, sip: &UdpSocket, to_tagged: &str) -> TestResult {
    hang_up_as(CALL_ID, server, sip, to_tagged)
}

/// [`hang_up`] the call `call_id`.
pub fn hang_up_as(call_id: &str, server: &super::Server, sip: &UdpSocket, to_tagged: &str) -> TestResult {
    hang_up_tagged(call_id, "t1", server, sip, to_tagged)
}

/// [`hang_up_as`] for the caller's tag `from_tag`.
pub fn hang_up_tagged(
    call_id: &str,
    from_tag: &str,
    server: &super::Server,
    sip: &UdpSocket,
    to_tagged: &str,
) -> TestResult {
    let (sip_port, my_port) = (server.sip_port, sip.local_addr()?.port());
    sip.send_to(
        request_tagged(call_id, from_tag, "BYE", 2, to_tagged, "z9hG4bK-bye", sip_port, my_port, "")
            .as_bytes(),
        ("127.0.0.1", sip_port),
    )?;
    Ok(())
}

/// Presses keys (RFC 4733 event codes) as telephone-events: for each, three
/// packets, then three with the end bit (RFC 4733 §2.5.1.4 resends the end).
pub fn press(rtp: &UdpSocket, media_port: u16, events: &[u8]) -> TestResult {
    let (mut seq, mut timestamp) = (1u16, 1000u32);
    for &event in events {
        for i in 0..6u16 {
            let end = i >= 3;
            let mut packet = vec![0x80, 101 | if i == 0 { 0x80 } else { 0 }];
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(&timestamp.to_be_bytes());
            packet.extend_from_slice(&0x1234u32.to_be_bytes());
            packet.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
            packet.extend_from_slice(&(160 * (i + 1)).to_be_bytes());
            rtp.send_to(&packet, ("127.0.0.1", media_port))?;
            seq += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        timestamp += 2000;
    }
    Ok(())
}

/// A raw INVITE from a fresh socket to `number`, never answered by media:
/// the final response (after any 1xx), acknowledged so it is not resent.
pub fn final_response(
    server: &super::Server,
    number: &str,
    call_id: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let sip = UdpSocket::bind("127.0.0.1:0")?;
    sip.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (my_port, sip_port) = (sip.local_addr()?.port(), server.sip_port);
    let sdp =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let to = format!("<sip:{number}@127.0.0.1:{sip_port}>");
    // The Request-URI names the number (request_as's names 1000).
    let uri = format!("sip:{number}@");
    let request = request_as(call_id, "INVITE", 1, &to, "z9hG4bK-final", sip_port, my_port, sdp).replacen(
        "sip:1000@",
        &uri,
        1,
    );
    sip.send_to(request.as_bytes(), ("127.0.0.1", sip_port))?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sip.recv(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 1") {
            continue;
        }
        let to_tagged = text.lines().find_map(|l| l.strip_prefix("To: ")).unwrap_or_default().to_owned();
        let ack = request_as(call_id, "ACK", 1, &to_tagged, "z9hG4bK-final", sip_port, my_port, "").replacen(
            "sip:1000@",
            &uri,
            1,
        );
        sip.send_to(ack.as_bytes(), ("127.0.0.1", sip_port))?;
        return Ok(text);
    }
}
