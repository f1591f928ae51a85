//! Admission limits against a running server: past `limits.max_calls` and
//! an agent's `max_concurrent_calls`, every channel refuses clearly (SIP 503
//! with Retry-After, websockets close 1013, WebRTC offers 503), `/metrics`
//! counts the refusals, and a place is given back when a call ends.

mod common;

use std::time::Duration;

use common::{API_KEY, Server, TestResult, http, http_text, start_server};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A JSON media stream to `agent` (empty: the configured one), started.
async fn stream(server: &Server, agent: &str) -> Result<Socket, Box<dyn std::error::Error>> {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/streams/json", server.http)).await?;
    socket.send(Message::text(json!({"type": "start", "agent": agent}).to_string())).await?;
    Ok(socket)
}

/// A chat with `agent`.
async fn chat(server: &Server, agent: &str) -> Result<Socket, Box<dyn std::error::Error>> {
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/chat?agent={agent}", server.http)).await?;
    Ok(socket)
}

/// The close code the server ends `socket` with, reading past anything else (5 s at most).
async fn closed_with(socket: &mut Socket) -> Option<u16> {
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.ok().flatten()
}

/// Whether `socket` is still open after `ms` (the server said nothing to close it).
async fn still_open(socket: &mut Socket, ms: u64) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(until, socket.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A raw INVITE to the configured number; the final response's status line and Retry-After.
fn invite(server: &Server) -> Result<(String, Option<String>), Box<dyn std::error::Error>> {
    let text = common::caller::final_response(server, "1000", "limits-1")?;
    let status = text.lines().next().unwrap_or_default().to_owned();
    let retry = text.lines().find_map(|l| l.strip_prefix("Retry-After: ")).map(str::to_owned);
    Ok((status, retry))
}

/// The status of an answer to an offer, its Retry-After and Location.
type OfferReply = (u16, Option<String>, Option<String>);

/// A WebRTC offer (made by str0m, as a browser's would be) posted to the
/// server, never followed by a connection.
fn offer_at(server: &Server) -> Result<OfferReply, Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let mut rtc = str0m::Rtc::new(std::time::Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::SendRecv, None, None, None);
    let (sdp, _pending) = change.apply().ok_or("no offer")?;
    let body = sdp.to_sdp_string();
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST /v1/webrtc/offer HTTP/1.1\r\nHost: {}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        server.http,
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).ok_or("no status")?.parse()?;
    let header = |name: &str| {
        response.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    Ok((status, header("retry-after"), header("location")))
}

fn offer(server: &Server) -> Result<(u16, Option<String>), Box<dyn std::error::Error>> {
    offer_at(server).map(|(status, retry, _)| (status, retry))
}

#[test]
fn offers_that_never_connect_hold_few_ports_per_network() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_WEBRTC__MAX_PENDING_PER_NETWORK", "2".to_owned()),
    ])?;
    let (first, _, location) = offer_at(&server)?;
    assert_eq!(first, 201);
    assert_eq!(offer_at(&server)?.0, 201);
    let (third, retry, _) = offer_at(&server)?;
    assert_eq!((third, retry.as_deref()), (429, Some("10")), "a third from the same network");
    // Hanging one up gives its place back.
    let location = location.ok_or("no Location")?;
    assert_eq!(http(&server, "DELETE", &location, None, None)?.0, 204);
    let mut again = 0;
    for _ in 0..50 {
        again = offer_at(&server)?.0;
        if again == 201 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(again, 201, "the freed place was not given back");
    Ok(())
}

#[test]
fn past_the_limits_every_channel_refuses_clearly_and_a_place_comes_back() -> TestResult {
    let server = common::start_process(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_LIMITS__MAX_CALLS", "2".to_owned()),
        ("VOXGATE_LIMITS__RETRY_AFTER_S", "7".to_owned()),
    ])?;
    let spec =
        json!({"name": "Night line", "greeting": "", "max_concurrent_calls": 1, "public": true}).to_string();
    let (status, agent) = http(&server, "POST", "/v1/agents", Some(API_KEY), Some(&spec))?;
    assert_eq!(status, 201, "{agent}");
    let agent = agent["id"].as_str().ok_or("no id")?.to_owned();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // The stored agent takes one chat; a second is its limit.
        let mut first = chat(&server, &agent).await?;
        assert!(still_open(&mut first, 300).await);
        let mut second = chat(&server, &agent).await?;
        assert_eq!(closed_with(&mut second).await, Some(1013), "the agent's own limit");
        // The configured agent takes the server's second place; then the server is full.
        let mut call = stream(&server, "").await?;
        assert!(still_open(&mut call, 300).await);
        let mut third = stream(&server, "").await?;
        assert_eq!(closed_with(&mut third).await, Some(1013), "the server's limit");
        let (status, retry) = invite(&server)?;
        assert!(status.starts_with("SIP/2.0 503"), "{status}");
        assert_eq!(retry.as_deref(), Some("7"));
        let (status, retry) = offer(&server)?;
        assert_eq!((status, retry.as_deref()), (503, Some("7")));
        // A call ends: its place is free again.
        call.send(Message::text(r#"{"type": "stop"}"#)).await?;
        let _ = closed_with(&mut call).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut again = stream(&server, "").await?;
        assert!(still_open(&mut again, 300).await, "a place came back");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let (_, metrics) = http_text(&server, "GET", "/metrics", None, None)?;
    for (channel, reason, n) in
        [("chat", "agent", 1), ("websocket", "server", 1), ("sip", "server", 1), ("webrtc", "server", 1)]
    {
        let line = format!("voxgate_calls_refused_total{{channel=\"{channel}\",reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");
    }
    Ok(())
}
