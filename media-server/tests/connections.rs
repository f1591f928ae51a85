//! The HTTP and SIP-over-TCP listeners against clients that hold
//! connections: headers sent a piece at a time and never finished,
//! kept-alive connections left idle, and more connections than allowed.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, TestResult, start_server};

fn server(max_connections: u32) -> Result<Server, Box<dyn std::error::Error>> {
    start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_HTTP__HEADER_TIMEOUT_S", "1".to_owned()),
        ("VOXGATE_HTTP__MAX_CONNECTIONS", max_connections.to_string()),
    ])
}

fn connect(server: &Server) -> Result<TcpStream, Box<dyn std::error::Error>> {
    let stream = TcpStream::connect(server.http)?;
    // Far longer than the server's 1 s: a read that times out means the server kept the connection.
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    Ok(stream)
}

/// Reads until the server closes the connection; what it sent. An error
/// if the server kept it open for the whole read timeout.
fn until_closed(stream: &mut TcpStream) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("the server kept the connection open: {e}").into()),
        }
    }
}

#[test]
fn unfinished_headers_and_idle_connections_are_closed_by_the_server() -> TestResult {
    let server = server(64)?;
    // Headers a piece at a time, never finished.
    let mut slow = connect(&server)?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")?;
    std::thread::sleep(Duration::from_millis(300));
    slow.write_all(b"X-Slow: 1\r\n")?;
    let said = until_closed(&mut slow)?;
    assert!(!String::from_utf8_lossy(&said).contains("200 OK"), "an unfinished request was answered");
    // A kept-alive connection is answered, then closed once it idles.
    let mut idle = connect(&server)?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let said = String::from_utf8(until_closed(&mut idle)?)?;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    // A connection that never sends a byte is closed too.
    let mut silent = connect(&server)?;
    assert!(until_closed(&mut silent)?.is_empty());
    Ok(())
}

#[test]
fn connections_past_the_cap_are_closed_unanswered_until_one_frees() -> TestResult {
    let server = server(3)?;
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(100));
    let mut fourth = connect(&server)?;
    fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let said = until_closed(&mut fourth)?;
    assert!(said.is_empty(), "past the cap, answered: {}", String::from_utf8_lossy(&said));
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let (status, _) = common::http(&server, "GET", "/healthz", None, None)?;
    assert_eq!(status, 200, "a place came back");
    let line = server.log.try_iter().find(|l| l.contains("http.max_connections"));
    assert!(line.is_some(), "the refusal is logged");
    Ok(())
}

/// An OPTIONS over a SIP TCP connection; the response's status line, if one came.
fn options_over(
    stream: &mut TcpStream,
    server: &Server,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let port = stream.local_addr()?.port();
    let sip_port = server.sip_port;
    let request = format!(
        "OPTIONS sip:1000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-tcp{port}\r\n\
         From: <sip:probe@127.0.0.1>;tag=p{port}\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: tcp-{port}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut buf = [0u8; 4096];
    let n = match stream.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => return Err(e.into()),
    };
    Ok((n > 0).then(|| String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()))
}

#[test]
fn sip_over_tcp_holds_few_connections_per_source_and_closes_idle_ones() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_SIP__TCP_MAX_PER_SOURCE", "2".to_owned()),
        ("VOXGATE_SIP__TCP_IDLE_TIMEOUT_S", "2".to_owned()),
    ])?;
    let sip = std::net::SocketAddr::from(([127, 0, 0, 1], server.sip_port));
    let open = || -> Result<TcpStream, Box<dyn std::error::Error>> {
        let s = TcpStream::connect(sip)?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        Ok(s)
    };
    let (mut first, mut second) = (open()?, open()?);
    assert_eq!(options_over(&mut first, &server)?.as_deref(), Some("SIP/2.0 200 OK"));
    assert_eq!(options_over(&mut second, &server)?.as_deref(), Some("SIP/2.0 200 OK"));
    let mut third = open()?;
    assert_eq!(options_over(&mut third, &server)?, None, "a third connection from one address");
    // Left idle, the server closes them, and a new one is taken.
    assert!(until_closed(&mut first)?.is_empty());
    assert!(until_closed(&mut second)?.is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let mut again = open()?;
    assert_eq!(options_over(&mut again, &server)?.as_deref(), Some("SIP/2.0 200 OK"));
    Ok(())
}
