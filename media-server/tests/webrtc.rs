//! A browser call: headless Chromium (driven by playwright-core) whose fake
//! microphone plays a fixture question calls the running server over
//! WebRTC, on loopback with two interfaces (127.0.0.1 and 127.0.0.2, a host
//! candidate each). What the browser heard, transcribed, holds the greeting
//! and an answer from the agent's knowledge; the call log has the caller's
//! question. Needs `chromium` and the npm packages of
//! `tests/browser` (scripts/setup.sh installs both).

mod common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{TestResult, root, start_server};
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};

fn models_dir() -> std::path::PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), std::path::PathBuf::from)
}

#[test]
fn a_browser_caller_hears_the_greeting_and_an_answer() -> TestResult {
    let browser_dir = root().join("media-server/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need Node.js >= 20 with npm, then scripts/setup.sh (it installs their npm packages)"
    );
    let work = std::env::temp_dir().join(format!("voxgate-webrtc-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    // The microphone: 5 s of quiet (the greeting), the question, 16 s to listen.
    let mut reader = hound::WavReader::open(root().join("fixtures/audio/store_hours_48k.wav"))?;
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 48_000);
    let question: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let mut mic = vec![0i16; 48_000 * 5];
    mic.extend(question);
    mic.extend(std::iter::repeat_n(0, 48_000 * 16));
    let wav = work.join("mic.wav");
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for s in &mic {
        w.write_sample(*s)?;
    }
    w.finalize()?;

    // Two interfaces (both loopback here): a socket and a host candidate each.
    let server = start_server(&[("VOXGATE_WEBRTC__ADDRESSES", r#"["127.0.0.1", "127.0.0.2"]"#.to_owned())])?;
    let out = Command::new("node")
        .current_dir(&browser_dir)
        .arg("webrtc_call.mjs")
        .arg(format!("http://{}", server.http))
        .arg(&wav)
        .arg("24")
        .output()?;
    assert!(out.status.success(), "the browser failed: {}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(result["hangup_status"], 204, "{result}");
    assert!(result["first_audio_ms"].is_number(), "no audio reached the browser: {result}");
    let candidates: Vec<&str> =
        result["candidates"].as_array().ok_or("no candidates")?.iter().filter_map(|c| c.as_str()).collect();
    assert!(
        candidates.iter().any(|c| c.contains(" 127.0.0.1 "))
            && candidates.iter().any(|c| c.contains(" 127.0.0.2 ")),
        "a host candidate per interface: {candidates:?}"
    );

    let bytes = B64.decode(result["heard"].as_str().ok_or("nothing heard")?)?;
    let heard: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let whisper = WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?;
    let text = whisper.transcribe(&heard)?.to_lowercase();
    assert!(text.contains("sunrise bakery") || text.contains("thanks for calling"), "no greeting in: {text}");
    assert!(text.contains('9') || text.contains("nine"), "no answer from the knowledge in: {text}");

    let log = common::call_log(&server)?;
    assert_eq!(log["channel"], "webrtc");
    let asked = log["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .any(|l| l["speaker"] == "caller" && l["text"].as_str().is_some_and(|t| t.contains("Saturday")));
    assert!(asked, "{log:#}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
