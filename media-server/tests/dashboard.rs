//! The operator dashboard in headless Chromium (`tests/browser/dashboard.mjs`):
//! an operator made with `voxgate admin create` logs in, opens a call made
//! over the JSON media stream, sees its transcript and analytics, plays its
//! recording, sees the charts, and edits an agent. Screenshots are kept in
//! `target/test-artifacts/`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{API_KEY, Server, TestResult, http, root, start_server};
use serde_json::{Value, json};

/// A call over the JSON stream: the fixture question, then quiet while the agent answers.
async fn call(server: &Server) -> Result<String, Box<dyn std::error::Error>> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/streams/json", server.http)).await?;
    socket.send(Message::text(r#"{"type": "start"}"#)).await?;
    let id = loop {
        if let Some(Ok(Message::Text(t))) = socket.next().await {
            let v: Value = serde_json::from_str(t.as_str())?;
            break v["session_id"].as_str().ok_or("no session id")?.to_owned();
        }
    };
    let mut question = hound::WavReader::open(root().join("fixtures/audio/store_hours_16k.wav"))?;
    let mut samples = vec![0i16; 16_000 * 4];
    samples.extend(question.samples::<i16>().collect::<Result<Vec<_>, _>>()?);
    samples.extend(std::iter::repeat_n(0, 16_000 * 8));
    for (i, frame) in samples.chunks(320).enumerate() {
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let media =
            json!({"type": "media", "session_id": id, "sequence": i, "data": data, "format": "pcm_16k"});
        socket.send(Message::text(media.to_string())).await?;
        // Drain what the agent says, paced like a caller.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), socket.next()).await {}
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    socket.send(Message::text(r#"{"type": "stop"}"#)).await?;
    let _ =
        tokio::time::timeout(Duration::from_secs(10), async { while socket.next().await.is_some() {} }).await;
    Ok(id)
}

#[test]
fn an_operator_logs_in_opens_a_call_plays_its_recording_and_edits_an_agent() -> TestResult {
    let browser_dir = root().join("media-server/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need Node.js >= 20 with npm, then scripts/setup.sh (it installs their npm packages)"
    );
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    let (status, agent) = http(
        &server,
        "POST",
        "/v1/agents",
        Some(API_KEY),
        Some(r#"{"name": "Front desk", "greeting": "Hello."}"#),
    )?;
    assert_eq!(status, 201, "{agent}");
    let agent_id = agent["id"].as_str().ok_or("no id")?.to_owned();
    let id = tokio::runtime::Runtime::new()?.block_on(call(&server))?;
    // Analysed (the configured agent's calls get the local reading).
    let until = Instant::now() + Duration::from_secs(30);
    while http(&server, "GET", &format!("/v1/calls/{id}"), Some(API_KEY), None)?.1["analytics"].is_null() {
        assert!(Instant::now() < until, "the call was not analysed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // An operator of the default tenant, which owns the configured agent's calls.
    let database = format!("sqlite://{}/voxgate.db", server.recordings.display());
    common::admin_create(&database, "ops@bakery.test", "a long dashboard password", "default")?;

    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let shot = artifacts.join("dashboard.png");
    let out = Command::new("node")
        .current_dir(&browser_dir)
        .arg("dashboard.mjs")
        .arg(format!("http://{}/dashboard", server.http))
        .args(["ops@bakery.test", "a long dashboard password", "Good morning from the front desk."])
        .arg(&shot)
        .output()?;
    assert!(out.status.success(), "the operator failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout)?;
    assert!(seen["refused"].as_str().is_some_and(|r| !r.is_empty()), "{seen}");
    assert!(seen["rows"].as_u64() >= Some(1), "{seen}");
    let transcript = seen["transcript"].to_string();
    assert!(transcript.contains("Saturday"), "the caller's question: {transcript}");
    assert!(seen["analytics"].as_str().is_some_and(|a| a.contains("sentiment")), "{seen}");
    let played = &seen["played"];
    assert!(played["currentTime"].as_f64() > Some(0.5), "the recording played: {played}");
    assert!(played["duration"].as_f64() > Some(10.0), "{played}");
    assert!(seen["charts"]["callBars"].as_u64() >= Some(1), "{seen}");
    assert!(seen["charts"]["categoryBars"].as_u64() >= Some(1), "{seen}");
    assert_eq!(seen["charts"]["categories"].as_array().map(Vec::len), Some(5), "{seen}");
    assert!(seen["charts"]["phrases"].to_string().contains("open on saturday"), "{seen}");
    assert_eq!(seen["errors"], json!([]), "no script errors");
    assert!(std::fs::metadata(&shot)?.len() > 10_000, "a screenshot at {}", shot.display());
    // The greeting the operator typed is the agent's now.
    let (_, agent) = http(&server, "GET", &format!("/v1/agents/{agent_id}"), Some(API_KEY), None)?;
    assert_eq!(agent["greeting"], "Good morning from the front desk.", "{agent}");
    Ok(())
}
