//! Who reaches an agent over the public media endpoints, tried against a
//! running server: strangers reach only public agents, media tokens open
//! the one agent they were minted for, the widget still works with the
//! media endpoints closed, and a Twilio stream for an agent needs its
//! tenant's signature (computed here by Python's own HMAC, not ours).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{API_KEY, Server, TestResult, http, start_server};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn agent(server: &Server, name: &str, public: bool) -> Result<String, Box<dyn std::error::Error>> {
    let spec = json!({"name": name, "greeting": format!("{name} here."), "public": public}).to_string();
    let (status, made) = http(server, "POST", "/v1/agents", Some(API_KEY), Some(&spec))?;
    assert_eq!(status, 201, "{made}");
    Ok(made["id"].as_str().ok_or("no id")?.to_owned())
}

fn token_for(server: &Server, agent: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (status, made) =
        http(server, "POST", &format!("/v1/agents/{agent}/media-tokens"), Some(API_KEY), Some("{}"))?;
    assert_eq!(status, 201, "{made}");
    Ok(made["token"].as_str().ok_or("no token")?.to_owned())
}

/// Opens a websocket at `path`; the HTTP status of a refused upgrade.
async fn open(server: &Server, path: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let mut request = format!("ws://{}{path}", server.http).into_client_request().map_err(|_| 0u16)?;
    for (k, v) in headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| 0u16)?;
        request.headers_mut().insert(name, v.parse().map_err(|_| 0u16)?);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(_) => Err(0),
    }
}

fn status_of(opened: &Result<Socket, u16>) -> u16 {
    match opened {
        Ok(_) => 101,
        Err(s) => *s,
    }
}

/// What the server does next: the close code, or 0 when it sends something else first (5 s at most).
async fn next_close(socket: &mut Socket) -> Option<u16> {
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(Message::Close(frame)))) => Some(frame.map_or(0, |f| u16::from(f.code))),
        Ok(Some(Ok(_))) => Some(0),
        _ => None,
    }
}

#[test]
fn strangers_reach_public_agents_and_tokens_open_only_their_agent() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    let private = agent(&server, "Back office", false)?;
    let public = agent(&server, "Front desk", true)?;
    let other = agent(&server, "Payroll", false)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // A stranger: the private agent is as unknown as a missing one, on every endpoint.
        assert_eq!(status_of(&open(&server, &format!("/v1/chat?agent={private}"), &[]).await), 404);
        assert_eq!(status_of(&open(&server, &format!("/v1/chat?agent={public}"), &[]).await), 101);
        let mut stream = open(&server, "/v1/streams/json", &[]).await.map_err(|s| format!("{s}"))?;
        stream.send(Message::text(json!({"type": "start", "agent": private}).to_string())).await?;
        assert_eq!(next_close(&mut stream).await, Some(1008), "a stream to a private agent");
        // A token opens its agent, and no other.
        let token = token_for(&server, &private)?;
        let path = format!("/v1/chat?agent={private}&token={token}");
        assert_eq!(status_of(&open(&server, &path, &[]).await), 101);
        let path = format!("/v1/chat?agent={other}&token={token}");
        assert_eq!(status_of(&open(&server, &path, &[]).await), 404, "another agent with its token");
        let forged = token.replacen(&private, &other, 1);
        let path = format!("/v1/chat?agent={other}&token={forged}");
        assert_eq!(status_of(&open(&server, &path, &[]).await), 401, "a token moved to another agent");
        let mut stream = open(&server, &format!("/v1/streams/json?token={token}"), &[])
            .await
            .map_err(|s| format!("{s}"))?;
        stream.send(Message::text(json!({"type": "start", "agent": private}).to_string())).await?;
        assert_eq!(next_close(&mut stream).await, Some(0), "the token's agent talks");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    for (path, expected) in [
        (format!("/widget/frame?agent={private}"), 404),
        (format!("/widget.js?agent={private}"), 404),
        (format!("/widget/token?agent={private}"), 404),
        (format!("/widget/frame?agent={public}"), 200),
    ] {
        assert_eq!(common::http_text(&server, "GET", &path, None, None)?.0, expected, "{path}");
    }
    Ok(())
}

#[test]
fn with_the_media_endpoints_closed_the_widget_still_works_through_its_tokens() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_HTTP__MEDIA_KEY", "media-key-0123456789".to_owned()),
    ])?;
    let public = agent(&server, "Front desk", true)?;
    let private = agent(&server, "Back office", false)?;
    let (status, frame) =
        common::http_text(&server, "GET", &format!("/widget/frame?agent={public}"), None, None)?;
    assert_eq!(status, 200);
    assert!(frame.contains("\"token\":"), "the frame carries its token");
    let (status, minted) = http(&server, "GET", &format!("/widget/token?agent={public}"), None, None)?;
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().ok_or("no token")?.to_owned();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        assert_eq!(
            status_of(&open(&server, &format!("/v1/chat?agent={public}"), &[]).await),
            401,
            "no key, no token"
        );
        let path = format!("/v1/chat?agent={public}&token={token}");
        assert_eq!(status_of(&open(&server, &path, &[]).await), 101, "the widget's token");
        let path = format!("/v1/chat?agent={private}&key=media-key-0123456789");
        assert_eq!(status_of(&open(&server, &path, &[]).await), 101, "the operator's key reaches any agent");
    });
    Ok(())
}

/// Twilio's signature of `url` with `auth_token`, by Python's standard library.
fn python_signature(auth_token: &str, url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64, hashlib, hmac, sys; \
             print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha1).digest()).decode())",
            auth_token,
            url,
        ])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn twilio_start(token: Option<&str>) -> String {
    let mut parameters = json!({"from": "+15550100"});
    if let Some(t) = token {
        parameters["token"] = json!(t);
    }
    json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    .to_string()
}

#[test]
fn a_twilio_stream_for_an_agent_needs_its_tenants_signature() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_HTTP__PUBLIC_URL", "https://voice.example.test".to_owned()),
    ])?;
    let private = agent(&server, "Phone line", false)?;
    let (status, set) = http(
        &server,
        "PUT",
        "/v1/settings/twilio",
        Some(API_KEY),
        Some(r#"{"auth_token": "twilio-secret-123"}"#),
    )?;
    assert_eq!((status, &set), (200, &json!({"auth_token_set": true})));
    let path = format!("/v1/streams/twilio/{private}");
    let signature = python_signature("twilio-secret-123", &format!("wss://voice.example.test{path}"))?;
    let wrong = python_signature("another-token", &format!("wss://voice.example.test{path}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        assert_eq!(status_of(&open(&server, &path, &[]).await), 401, "unsigned");
        assert_eq!(status_of(&open(&server, &path, &[("x-twilio-signature", &wrong)]).await), 401);
        // Signed: the call runs, and the agent speaks (media comes back).
        let mut twilio =
            open(&server, &path, &[("x-twilio-signature", &signature)]).await.map_err(|s| format!("{s}"))?;
        twilio
            .send(Message::text(r#"{"event": "connected", "protocol": "Call", "version": "1.0.0"}"#))
            .await?;
        twilio.send(Message::text(twilio_start(None))).await?;
        let mut spoke = false;
        for _ in 0..200 {
            match tokio::time::timeout(Duration::from_secs(10), twilio.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str())?;
                    if v["event"] == "media" {
                        spoke = true;
                        break;
                    }
                }
                _ => break,
            }
        }
        assert!(spoke, "the agent's greeting never came back");
        // A bad token in start's parameters closes the stream, signed or not.
        let mut twilio =
            open(&server, &path, &[("x-twilio-signature", &signature)]).await.map_err(|s| format!("{s}"))?;
        twilio.send(Message::text(twilio_start(Some("agt_x.1.00")))).await?;
        assert_eq!(next_close(&mut twilio).await, Some(1008));
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    // Without a Twilio auth token the agent's path follows the usual rules: private, so unknown.
    assert_eq!(http(&server, "DELETE", "/v1/settings/twilio", Some(API_KEY), None)?.0, 204);
    rt.block_on(async {
        assert_eq!(status_of(&open(&server, &path, &[("x-twilio-signature", &signature)]).await), 404);
    });
    Ok(())
}
