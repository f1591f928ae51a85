//! An agent whose model is speech to speech (`llm = "openai_realtime"`),
//! called by a real phone (baresip, SIP/UDP, G.711) on 127.0.0.1. The model
//! is a local server speaking OpenAI's Realtime protocol (GA): it answers
//! each `response.create` with speech (espeak-ng at 24 kHz) and its words.
//! The phone must hear the model's greeting and answer (Whisper transcribes
//! what it recorded); the model must have been set up with the agent's
//! instructions and sent the caller's audio, committed at the turn's end;
//! the call's transcript holds the caller (the server's recogniser) and the
//! model's words.

mod common;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::heard::{ask_by_phone, read_wav};
use common::placed::{run, work_dir};
use common::{TestResult, start_server};

const GREETING: &str = "Hello, you have reached the bakery.";
const ANSWER: &str = "Our chocolate cake costs thirty five dollars.";

/// `text` spoken by espeak-ng, as 24 kHz mono samples.
fn speech_24k(dir: &Path, text: &str) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let (raw, out) = (dir.join("raw.wav"), dir.join("24k.wav"));
    run("espeak-ng", &["-w", &raw.display().to_string(), text])?;
    run(
        "sox",
        &[&raw.display().to_string(), "-r", "24000", "-c", "1", "-b", "16", &out.display().to_string()],
    )?;
    Ok(read_wav(&out)?.0)
}

/// Every event a client sent the model.
type Seen = Arc<Mutex<Vec<Value>>>;

/// The model: a Realtime server on 127.0.0.1 that says `replies` in
/// order; its URL, and every event the client sent.
fn model(replies: Vec<(&'static str, Vec<i16>)>) -> Result<(String, Seen), Box<dyn std::error::Error>> {
    let seen: Seen = Arc::default();
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("ws://{}/v1/realtime", listener.local_addr()?);
    listener.set_nonblocking(true)?;
    let kept = seen.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { continue };
                let (kept, replies) = (kept.clone(), replies.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while let Some(Ok(Message::Text(text))) = ws.next().await {
                        let Ok(event) = serde_json::from_str::<Value>(&text) else { return };
                        if let Ok(mut k) = kept.lock() {
                            k.push(event.clone());
                        }
                        if event["type"] != "response.create" {
                            continue;
                        }
                        let Some((words, audio)) = replies.lock().ok().and_then(|mut r| r.pop_front()) else { continue };
                        n += 1;
                        let (id, item) = (format!("resp_{n}"), format!("item_{n}"));
                        let mut out = vec![
                            json!({"type": "response.created", "response": {"id": id}}),
                            json!({"type": "response.output_audio_transcript.delta", "response_id": id, "item_id": item, "delta": words}),
                        ];
                        for chunk in audio.chunks(2400) {
                            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
                            let delta = base64::engine::general_purpose::STANDARD.encode(bytes);
                            out.push(json!({"type": "response.output_audio.delta", "response_id": id, "item_id": item, "delta": delta}));
                        }
                        out.push(json!({"type": "response.output_audio_transcript.done", "response_id": id, "item_id": item, "transcript": words}));
                        out.push(json!({"type": "response.done", "response": {"id": id, "status": "completed"}}));
                        for e in out {
                            if ws.send(Message::text(e.to_string())).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
    });
    Ok((url, seen))
}

#[test]
fn a_phone_caller_talks_with_a_speech_to_speech_model() -> TestResult {
    let work = work_dir("speech-to-speech");
    let replies = vec![(GREETING, speech_24k(&work, GREETING)?), (ANSWER, speech_24k(&work, ANSWER)?)];
    let (url, seen) = model(replies)?;
    let server = start_server(&[
        ("VOXGATE_AGENT__LLM", "openai_realtime".to_owned()),
        ("VOXGATE_AGENT__GREETING", GREETING.to_owned()),
        ("VOXGATE_OPENAI__REALTIME_URL", url),
        ("VOXGATE_OPENAI__API_KEY", "test-key".to_owned()),
    ])?;
    let heard = ask_by_phone(&work.join("phone"), &format!("sip:1000@127.0.0.1:{}", server.sip_port))?;
    assert!(heard.contains("reached"), "the phone did not hear the model's greeting: {heard}");
    assert!(
        heard.contains("chocolate") && heard.contains("dollars"),
        "the phone did not hear the model's answer: {heard}"
    );
    let log = common::call_log(&server)?;
    assert_eq!(common::lines(&log, "agent")?, [GREETING, ANSWER], "{log:#}");
    let caller = common::lines(&log, "caller")?;
    assert!(caller.iter().any(|l| l.contains("Saturday")), "{caller:?}");
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let of = |kind: &str| seen.iter().filter(|e| e["type"] == kind).cloned().collect::<Vec<_>>();
    let update = of("session.update");
    let instructions = update.first().and_then(|u| u["session"]["instructions"].as_str()).unwrap_or_default();
    assert!(instructions.contains("Sunrise Bakery"), "not the agent's instructions: {instructions}");
    // The caller's audio (more than the 3 s question) went to the model, and its turn was committed.
    let appended: usize = of("input_audio_buffer.append")
        .iter()
        .filter_map(|e| base64::engine::general_purpose::STANDARD.decode(e["audio"].as_str()?).ok())
        .map(|b| b.len() / 2)
        .sum();
    assert!(appended > 24_000 * 3, "{appended} samples of the caller at 24 kHz");
    assert!(!of("input_audio_buffer.commit").is_empty(), "no turn committed");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
