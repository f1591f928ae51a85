//! Calls over websocket media streams, against the running server on
//! 127.0.0.1. A client speaking the Twilio Media Streams protocol (as
//! Twilio, Telnyx or Plivo would) plays a fixture question over the
//! greeting: the server sends `clear` (barge-in), then the answer, which
//! transcribed holds the store's hours. The plain JSON stream, and bad
//! input: garbage and floods close the socket with a reason, never the server.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use voxgate_codecs::SampleRate;
use voxgate_codecs::g711::G711Law;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};

use common::{TestResult, root, start_server};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn resample(
    samples: &[i16],
    from: SampleRate,
    to: SampleRate,
) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let mut r = FrameResampler::new(from, to)?;
    let (n, m) = (from.samples_per_frame(), to.samples_per_frame());
    let mut padded = samples.to_vec();
    padded.resize(samples.len().div_ceil(n) * n, 0);
    let mut out = vec![0i16; m];
    let mut all = Vec::with_capacity(padded.len() * m / n);
    for chunk in padded.chunks_exact(n) {
        r.process(chunk, &mut out)?;
        all.extend_from_slice(&out);
    }
    Ok(all)
}

fn fixture_8k(name: &str) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let mut r = hound::WavReader::open(root().join("fixtures/audio").join(name))?;
    assert_eq!(r.spec().sample_rate, 16_000);
    let samples: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
    resample(&samples, SampleRate::HZ_16000, SampleRate::HZ_8000)
}

async fn connect(server: &common::Server, path: &str) -> Result<Socket, Box<dyn std::error::Error>> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", server.http)).await?;
    Ok(socket)
}

fn models_dir() -> std::path::PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), std::path::PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_stream_caller_barges_in_and_hears_the_answer() -> TestResult {
    let server = start_server(&[])?;
    let socket = connect(&server, "/v1/streams/twilio").await?;
    let (mut tx, mut rx) = socket.split();
    tx.send(Message::text(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()))
        .await?;
    tx.send(Message::text(
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZtest",
            "start": {"accountSid": "ACtest", "streamSid": "MZtest", "callSid": "CAtest", "tracks": ["inbound"],
                "customParameters": {}, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        .to_string(),
    ))
    .await?;

    // What the caller hears: the agent's audio in order, and where each `clear` fell.
    let listener = tokio::spawn(async move {
        let (mut heard, mut clears, mut marks) = (Vec::<i16>::new(), Vec::<usize>::new(), 0);
        while let Some(Ok(message)) = rx.next().await {
            let Message::Text(text) = message else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("JSON from the server");
            assert_eq!(v["streamSid"], "MZtest", "{v}");
            match v["event"].as_str() {
                Some("media") => {
                    let ulaw = B64.decode(v["media"]["payload"].as_str().expect("payload")).expect("base64");
                    let mut pcm = vec![0i16; ulaw.len()];
                    G711Law::Ulaw.decode(&ulaw, &mut pcm).expect("µ-law");
                    heard.extend_from_slice(&pcm);
                }
                Some("clear") => clears.push(heard.len()),
                Some("mark") => marks += 1,
                other => panic!("unexpected {other:?}: {v}"),
            }
        }
        (heard, clears, marks)
    });

    // The caller: 1 s of the greeting, then the question over it, then listens.
    let mut say = vec![0i16; 8000];
    say.extend(fixture_8k("store_hours_16k.wav")?);
    say.extend(std::iter::repeat_n(0, 8000 * 18));
    let start = Instant::now();
    for (i, chunk) in say.chunks(160).enumerate() {
        let mut ulaw = [0xFFu8; 160];
        G711Law::Ulaw.encode(chunk, &mut ulaw[..chunk.len()])?;
        let media = json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZtest",
            "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(),
                "payload": B64.encode(ulaw)}});
        tx.send(Message::text(media.to_string())).await?;
        // Real time, as a phone call comes.
        tokio::time::sleep_until((start + Duration::from_millis(20 * (i as u64 + 1))).into()).await;
    }
    tx.send(Message::text(
        json!({"event": "stop", "sequenceNumber": "999", "streamSid": "MZtest",
            "stop": {"accountSid": "ACtest", "callSid": "CAtest"}})
        .to_string(),
    ))
    .await?;
    let (heard, clears, marks) = tokio::time::timeout(Duration::from_secs(30), listener).await??;

    assert!(!clears.is_empty(), "no clear on barge-in");
    assert!(marks >= 2, "a mark per agent line: {marks}");
    // After the barge-in: the answer.
    let after = resample(&heard[clears[0]..], SampleRate::HZ_8000, SampleRate::HZ_16000)?;
    let whisper = WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?;
    let text = whisper.transcribe(&after)?.to_lowercase();
    assert!(text.contains('9') || text.contains("nine"), "no opening hours in what the caller heard: {text}");

    let log = common::call_log(&server)?;
    assert_eq!(log["channel"], "twilio");
    let lines = log["transcript"].as_array().ok_or("no transcript")?;
    assert_eq!(lines[0]["speaker"], "agent");
    assert_eq!(lines[0]["interrupted"], true, "the greeting was cut short: {log:#}");
    assert!(
        lines
            .iter()
            .any(|l| l["speaker"] == "caller" && l["text"].as_str().is_some_and(|t| t.contains("Saturday"))),
        "{log:#}"
    );
    assert_eq!(log["end"]["reason"], "caller_hung_up");
    Ok(())
}

/// Reads until the server closes; returns its close code and reason.
async fn closed(socket: &mut Socket) -> Result<(CloseCode, String), Box<dyn std::error::Error>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), socket.next()).await? {
            Some(Ok(Message::Close(Some(frame)))) => return Ok((frame.code, frame.reason.to_string())),
            Some(Ok(Message::Close(None))) | None => return Err("closed without a reason".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_stream_talks_and_bad_input_closes_it_with_a_reason() -> TestResult {
    let server = common::start_process(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;

    // A simple client: start, audio, the greeting back, stop.
    let mut socket = connect(&server, "/v1/streams/json").await?;
    socket.send(Message::text(r#"{"type": "start"}"#)).await?;
    let started: Value = loop {
        if let Some(Ok(Message::Text(t))) = socket.next().await {
            break serde_json::from_str(t.as_str())?;
        }
    };
    assert_eq!(started["type"], "started");
    let id = started["session_id"].as_str().ok_or("no session id")?.to_owned();
    let silence = B64.encode([0u8; 640]);
    let (mut media, mut transcript) = (0, Vec::new());
    for i in 0..150u64 {
        let frame = json!({"type": "media", "session_id": id, "timestamp": i * 20, "sequence": i,
            "data": silence, "format": "pcm_16k"});
        socket.send(Message::text(frame.to_string())).await?;
        while let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(1), socket.next()).await
        {
            let v: Value = serde_json::from_str(t.as_str())?;
            assert_eq!(v["session_id"], id.as_str());
            match v["type"].as_str() {
                Some("media") => media += 1,
                Some("transcript") => transcript.push(v["text"].as_str().unwrap_or_default().to_owned()),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(media > 20, "the greeting's audio came back: {media} frames");
    assert!(transcript.iter().any(|t| t.contains("Sunrise Bakery")), "{transcript:?}");
    socket.send(Message::text(r#"{"type": "stop"}"#)).await?;
    let (code, _) = closed(&mut socket).await?;
    assert_eq!(code, CloseCode::Normal);
    let log = common::call_log(&server)?;
    assert_eq!((log["channel"].as_str(), log["id"].as_str()), (Some("websocket"), Some(id.as_str())));

    // Garbage: counted and ignored, until there is too much of it.
    let mut socket = connect(&server, "/v1/streams/json").await?;
    socket.send(Message::text(r#"{"type": "start"}"#)).await?;
    for bad in [
        "{",
        r#"{"type": "media", "data": "***"}"#,
        r#"{"type": "media", "data": "AAEC"}"#,
        r#"{"type": "dtmf", "digit": "12"}"#,
    ]
    .iter()
    .cycle()
    .take(60)
    {
        if socket.send(Message::text(*bad)).await.is_err() {
            break;
        }
    }
    let (code, reason) = closed(&mut socket).await?;
    assert_eq!((code, reason.as_str()), (CloseCode::Policy, "too many bad messages"));

    // A flood: closed, whatever it carries.
    let mut socket = connect(&server, "/v1/streams/twilio").await?;
    for _ in 0..400 {
        if socket.send(Message::text(r#"{"event": "connected"}"#)).await.is_err() {
            break;
        }
    }
    let (code, reason) = closed(&mut socket).await?;
    assert_eq!((code, reason.as_str()), (CloseCode::Policy, "too many messages"));

    // No start in time.
    let mut socket = connect(&server, "/v1/streams/twilio").await?;
    let (code, reason) = closed(&mut socket).await?;
    assert_eq!((code, reason.as_str()), (CloseCode::Policy, "no start within 10 s"));

    // The server carries on, and counted what it refused.
    let (status, metrics) = common::http_text(&server, "GET", "/metrics", None, None)?;
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"voxgate_bad_frames_total{channel="websocket"} 50"#), "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_key_keeps_strangers_out() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_HTTP__MEDIA_KEY", "s3cret-media".to_owned()),
    ])?;
    for path in ["/v1/streams/twilio", "/v1/streams/json?key=wrong"] {
        let refused = tokio_tungstenite::connect_async(format!("ws://{}{path}", server.http)).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
            "{path}: {refused:?}"
        );
    }
    let mut socket = connect(&server, "/v1/streams/json?key=s3cret-media").await?;
    socket.send(Message::text(r#"{"type": "start"}"#)).await?;
    let Some(Ok(Message::Text(t))) = socket.next().await else { return Err("no answer".into()) };
    assert!(t.as_str().contains("started"), "{t}");
    Ok(())
}

/// A text chat with the same agent (the offline one: its knowledge and its
/// local model): the greeting, a reply streamed in pieces that answers from
/// the knowledge, bad messages refused one by one, and the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_with_the_agent_streams_its_answer() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    let mut socket = connect(&server, "/v1/chat").await?;
    let mut next = async || -> Result<Value, Box<dyn std::error::Error>> {
        loop {
            match tokio::time::timeout(Duration::from_secs(60), socket.next()).await? {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                Some(Ok(_)) => {}
                other => return Err(format!("the chat closed: {other:?}").into()),
            }
        }
    };
    let (started, greeting) = (next().await?, next().await?);
    assert_eq!(started["type"], "started");
    assert_eq!(greeting["type"], "message");
    assert!(greeting["text"].as_str().is_some_and(|t| t.contains("Sunrise Bakery")), "{greeting}");

    for bad in ["not json", r#"{"type": "message", "text": ""}"#, r#"{"type": "message", "text": 5}"#] {
        socket.send(Message::text(bad)).await?;
        let Some(Ok(Message::Text(t))) = socket.next().await else { return Err("no answer".into()) };
        assert!(t.as_str().contains(r#""type":"error""#), "{bad}: {t}");
    }

    socket
        .send(Message::text(
            json!({"type": "message", "text": "What time does your store open on Saturday?"}).to_string(),
        ))
        .await?;
    let mut deltas = Vec::new();
    let reply = loop {
        let Some(Ok(Message::Text(t))) = tokio::time::timeout(Duration::from_secs(60), socket.next()).await?
        else {
            return Err("the chat closed".into());
        };
        let v: Value = serde_json::from_str(t.as_str())?;
        match v["type"].as_str() {
            Some("delta") => deltas.push(v["text"].as_str().unwrap_or_default().to_owned()),
            Some("message") => break v["text"].as_str().unwrap_or_default().to_owned(),
            other => return Err(format!("unexpected {other:?}: {v}").into()),
        }
    };
    assert!(deltas.len() > 1, "streamed in pieces: {deltas:?}");
    assert_eq!(deltas.concat().trim(), reply);
    let lower = reply.to_lowercase();
    assert!(lower.contains('9') || lower.contains("nine"), "an answer from the knowledge: {reply}");

    socket.send(Message::text(r#"{"type": "end"}"#)).await?;
    let (code, _) = closed(&mut socket).await?;
    assert_eq!(code, CloseCode::Normal);
    let log = common::call_log(&server)?;
    assert_eq!(log["channel"], "chat");
    let speakers: Vec<&str> = log["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .filter_map(|l| l["speaker"].as_str())
        .collect();
    assert_eq!(speakers, ["agent", "caller", "agent"]);
    assert_eq!(log["end"]["reason"], "caller_hung_up");
    Ok(())
}
