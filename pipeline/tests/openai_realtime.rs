//! The OpenAI Realtime speech-to-speech client against a local server that
//! speaks the protocol over a websocket (GA event names, or the beta ones),
//! and then a session answering through it: the caller's audio appended,
//! turns committed and answered, barge-in cancelling and truncating to what
//! the caller heard, tool calls, a session the server closes replaced by a
//! new one with the conversation so far, a refused key.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use voxgate_pipeline::providers::openai_realtime::{OpenAiRealtime, OpenAiRealtimeConfig};
use voxgate_pipeline::providers::{
    CancellationToken, ProviderError, S2sEvent, S2sInput, S2sSetup, SpeechToSpeech, ToolSpec,
};

mod support;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the server does at a `response.create`.
#[derive(Debug, Clone)]
enum Reply {
    /// Speak `text` (its audio `ms` long, a 20 ms chunk each 20 ms), with
    /// the GA event names or the beta ones.
    Speak { text: &'static str, ms: u64, beta: bool },
    /// Call a tool.
    Call { name: &'static str, arguments: &'static str },
    /// Speak, then close the socket (a session that reached its limit).
    SpeakThenClose { text: &'static str },
    /// Fail: an error event, then the response ends failed.
    Fail,
}

/// The server: its replies in order, and every client event per connection.
#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Vec<Value>>>>,
}

impl Fake {
    fn new(replies: Vec<Reply>) -> Self {
        Self { replies: Arc::new(Mutex::new(replies.into())), seen: Arc::default() }
    }

    fn seen(&self) -> Vec<Vec<Value>> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The events of `kind` the client sent on connection `n`.
    fn of(&self, n: usize, kind: &str) -> Vec<Value> {
        self.seen()
            .get(n)
            .map(|c| c.iter().filter(|e| e["type"] == kind).cloned().collect())
            .unwrap_or_default()
    }

    async fn serve(self) -> Result<String, Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(self.clone().connection(stream));
            }
        });
        Ok(format!("ws://{addr}/v1/realtime"))
    }

    async fn connection(self, stream: tokio::net::TcpStream) {
        #[allow(clippy::result_large_err, reason = "tungstenite's handshake callback fixes this signature")]
        let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let key = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            let model = req.uri().query().is_some_and(|q| q.contains("model=gpt-realtime"));
            // GA: no beta header.
            let beta = req.headers().contains_key("openai-beta");
            if key == "Bearer test-key" && model && !beta {
                Ok(resp)
            } else {
                let mut r = ErrorResponse::new(Some("{\"error\":{\"code\":\"invalid_api_key\"}}".into()));
                *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                Err(r)
            }
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else { return };
        let n = {
            let Ok(mut seen) = self.seen.lock() else { return };
            seen.push(Vec::new());
            seen.len() - 1
        };
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        // The response being played: its id, and the events still to send.
        let mut playing: Option<(String, VecDeque<Value>)> = None;
        let mut responses = 0;
        loop {
            tokio::select! {
                msg = ws.next() => {
                    let Some(Ok(Message::Text(text))) = msg else { return };
                    let Ok(event) = serde_json::from_str::<Value>(&text) else { return };
                    if let Ok(mut seen) = self.seen.lock() {
                        seen[n].push(event.clone());
                    }
                    match event["type"].as_str().unwrap_or_default() {
                        "session.update" => {
                            let _ = ws.send(Message::text(json!({"type": "session.updated", "session": event["session"]}).to_string())).await;
                        }
                        "response.create" => {
                            responses += 1;
                            let id = format!("resp_{n}_{responses}");
                            let reply = self.replies.lock().ok().and_then(|mut r| r.pop_front());
                            let Some(reply) = reply else { continue };
                            let _ = ws.send(Message::text(json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}).to_string())).await;
                            playing = Some((id.clone(), script(&id, &reply)));
                        }
                        "response.cancel" => {
                            if let Some((id, _)) = playing.take() {
                                let done = json!({"type": "response.done", "response": {"id": id, "status": "cancelled"}});
                                let _ = ws.send(Message::text(done.to_string())).await;
                            }
                        }
                        _ => {}
                    }
                }
                _ = tick.tick(), if playing.is_some() => {
                    let Some((_, events)) = playing.as_mut() else { continue };
                    match events.pop_front() {
                        Some(e) if e["type"] == "close" => {
                            let _ = ws.close(None).await;
                            return;
                        }
                        Some(e) => {
                            let _ = ws.send(Message::text(e.to_string())).await;
                        }
                        None => playing = None,
                    }
                }
            }
        }
    }
}

/// 20 ms of a 300 Hz tone at 24 kHz, base64 of little-endian PCM.
fn chunk_24k() -> String {
    let samples: Vec<u8> = (0..480)
        .map(|i: i32| ((f64::from(i) * 300.0 * std::f64::consts::TAU / 24_000.0).sin() * 8000.0) as i16)
        .flat_map(i16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(samples)
}

/// The events a reply is played as, a tick each.
fn script(id: &str, reply: &Reply) -> VecDeque<Value> {
    let mut out = VecDeque::new();
    let item = format!("item_{id}");
    let (text, ms, beta, close) = match reply {
        Reply::Call { name, arguments } => {
            out.push_back(json!({"type": "response.function_call_arguments.done", "response_id": id,
                                 "item_id": item, "call_id": "call_1", "name": name, "arguments": arguments}));
            out.push_back(json!({"type": "response.done", "response": {"id": id, "status": "completed"}}));
            return out;
        }
        Reply::Fail => {
            out.push_back(json!({"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "boom"}}));
            out.push_back(json!({"type": "response.done", "response": {"id": id, "status": "failed"}}));
            return out;
        }
        Reply::Speak { text, ms, beta } => (*text, *ms, *beta, false),
        Reply::SpeakThenClose { text } => (*text, 400, false, true),
    };
    let (audio, words, words_done) = if beta {
        ("response.audio.delta", "response.audio_transcript.delta", "response.audio_transcript.done")
    } else {
        (
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio_transcript.done",
        )
    };
    out.push_back(json!({"type": "response.output_item.added", "response_id": id, "item": {"id": item, "type": "message"}}));
    for (i, word) in text.split_inclusive(' ').enumerate() {
        out.push_back(json!({"type": words, "response_id": id, "item_id": item, "delta": word}));
        if i == 0 {
            out.push_back(json!({"type": audio, "response_id": id, "item_id": item, "delta": chunk_24k()}));
        }
    }
    for _ in 1..ms / 20 {
        out.push_back(json!({"type": audio, "response_id": id, "item_id": item, "delta": chunk_24k()}));
    }
    out.push_back(json!({"type": words_done, "response_id": id, "item_id": item, "transcript": text}));
    out.push_back(json!({"type": "response.done", "response": {"id": id, "status": "completed"}}));
    if close {
        out.push_back(json!({"type": "close"}));
    }
    out
}

fn model(url: &str, key: &str) -> OpenAiRealtime {
    OpenAiRealtime::new(OpenAiRealtimeConfig {
        url: url.into(),
        api_key: key.into(),
        max_reconnects: 2,
        ..OpenAiRealtimeConfig::default()
    })
}

fn setup() -> S2sSetup {
    S2sSetup {
        instructions: "You answer for Sunrise Bakery.".into(),
        tools: vec![ToolSpec {
            name: "book_table".into(),
            description: "Books a table".into(),
            parameters: json!({"type": "object", "properties": {"people": {"type": "integer"}}}).to_string(),
        }],
    }
}

/// Events until `Done` (or 5 s): the words, the 16 kHz samples, tool calls, and whether Done came.
async fn answer(
    events: &mut mpsc::Receiver<Result<S2sEvent, ProviderError>>,
) -> (String, usize, Vec<S2sEvent>, bool) {
    let (mut words, mut samples, mut other) = (String::new(), 0, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match event {
            Ok(S2sEvent::Text(w)) => words.push_str(&w),
            Ok(S2sEvent::Audio(a)) => samples += a.len(),
            Ok(S2sEvent::Done) => return (words, samples, other, true),
            Ok(e) => {
                let call = matches!(e, S2sEvent::ToolCall(_));
                other.push(e);
                if call {
                    return (words, samples, other, false);
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    (words, samples, other, false)
}

/// Waits until the server has seen an event of `kind` on connection `n`.
async fn until_seen(fake: &Fake, n: usize, kind: &str) -> Vec<Value> {
    for _ in 0..250 {
        let seen = fake.of(n, kind);
        if !seen.is_empty() {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {kind} on connection {n}: {:?}", fake.seen());
}

#[tokio::test]
async fn a_turn_is_committed_and_answered_in_speech_with_its_words() -> TestResult {
    let fake = Fake::new(vec![Reply::Speak { text: "We open at nine.", ms: 1000, beta: false }]);
    let url = fake.clone().serve().await?;
    let mut s = model(&url, "test-key").open(setup(), CancellationToken::new())?;
    // 200 ms of the caller, then the end of the turn.
    for _ in 0..2 {
        s.input.send(S2sInput::Audio(vec![1000; 1600])).await?;
    }
    s.input.send(S2sInput::Respond { said: "When do you open?".into() }).await?;
    let (words, samples, _, done) = answer(&mut s.events).await;
    assert!(done, "no Done");
    assert_eq!(words, "We open at nine.");
    // A second of 24 kHz audio is about a second at 16 kHz.
    assert!((15_000..=16_000).contains(&samples), "{samples} samples");
    // The session: GA shape, our turn-taking, the tools.
    let update = &fake.of(0, "session.update")[0]["session"];
    assert_eq!(update["type"], "realtime");
    assert_eq!(update["audio"]["input"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert_eq!(update["audio"]["output"]["format"]["rate"], 24000);
    assert!(update["audio"]["input"]["turn_detection"].is_null(), "{update}");
    assert_eq!(update["audio"]["output"]["voice"], "marin");
    assert_eq!(update["tools"][0]["type"], "function");
    assert_eq!(update["tools"][0]["name"], "book_table");
    assert_eq!(update["tools"][0]["parameters"]["type"], "object");
    assert_eq!(update["instructions"], "You answer for Sunrise Bakery.");
    // 200 ms at 16 kHz appended as 200 ms at 24 kHz, then commit, then respond.
    let appended: usize = fake
        .of(0, "input_audio_buffer.append")
        .iter()
        .filter_map(|e| base64::engine::general_purpose::STANDARD.decode(e["audio"].as_str()?).ok())
        .map(|b| b.len() / 2)
        .sum();
    assert_eq!(appended, 4800);
    let kinds: Vec<String> =
        fake.seen()[0].iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect();
    let commit = kinds.iter().position(|k| k == "input_audio_buffer.commit").ok_or("no commit")?;
    let create = kinds.iter().position(|k| k == "response.create").ok_or("no response.create")?;
    assert!(commit < create, "{kinds:?}");
    Ok(())
}

#[tokio::test]
async fn barge_in_cancels_the_answer_and_truncates_it_to_what_was_heard() -> TestResult {
    let fake = Fake::new(vec![
        Reply::Speak { text: "Let me tell you all about our cakes.", ms: 3000, beta: false },
        Reply::Speak { text: "Sure.", ms: 200, beta: false },
    ]);
    let url = fake.clone().serve().await?;
    let mut s = model(&url, "test-key").open(setup(), CancellationToken::new())?;
    s.input.send(S2sInput::Respond { said: "Tell me about cakes.".into() }).await?;
    // Some of the answer arrives, then the caller talks over it.
    let mut got = 0;
    while got < 8000 {
        if let Some(Ok(S2sEvent::Audio(a))) = s.events.recv().await {
            got += a.len();
        }
    }
    s.input.send(S2sInput::Interrupt { heard_ms: 350 }).await?;
    let truncate = until_seen(&fake, 0, "conversation.item.truncate").await;
    assert_eq!(truncate[0]["audio_end_ms"], 350);
    assert_eq!(truncate[0]["item_id"], "item_resp_0_1");
    assert_eq!(truncate[0]["content_index"], 0);
    assert_eq!(fake.of(0, "response.cancel").len(), 1);
    // The next turn is answered; nothing of the cancelled answer comes through.
    s.input.send(S2sInput::Respond { said: "Just the prices.".into() }).await?;
    let (words, _, _, done) = answer(&mut s.events).await;
    assert!(done);
    assert_eq!(words, "Sure.", "the cancelled answer's words leaked");
    Ok(())
}

#[tokio::test]
async fn a_tool_call_goes_to_the_session_and_its_result_back_to_the_model() -> TestResult {
    let fake = Fake::new(vec![
        Reply::Call { name: "book_table", arguments: r#"{"people": 2}"# },
        Reply::Speak { text: "Booked for two.", ms: 200, beta: false },
    ]);
    let url = fake.clone().serve().await?;
    let mut s = model(&url, "test-key").open(setup(), CancellationToken::new())?;
    s.input.send(S2sInput::Respond { said: "A table for two.".into() }).await?;
    let (_, _, other, done) = answer(&mut s.events).await;
    assert!(!done, "the answer ended before the tool's result");
    let Some(S2sEvent::ToolCall(call)) = other.last() else { panic!("no tool call: {other:?}") };
    assert_eq!((call.name.as_str(), call.arguments.as_str()), ("book_table", r#"{"people": 2}"#));
    s.input
        .send(S2sInput::ToolResult {
            call_id: call.id.clone(),
            output: r#"{"booked": true}"#.into(),
            respond: true,
        })
        .await?;
    let (words, _, _, done) = answer(&mut s.events).await;
    assert!(done);
    assert_eq!(words, "Booked for two.");
    let item = &fake.of(0, "conversation.item.create")[0]["item"];
    assert_eq!(item["type"], "function_call_output");
    assert_eq!(item["call_id"], "call_1");
    assert_eq!(item["output"], r#"{"booked": true}"#);
    assert_eq!(fake.of(0, "response.create").len(), 2);
    Ok(())
}

#[tokio::test]
async fn keys_the_caller_pressed_are_answered_as_text() -> TestResult {
    let fake = Fake::new(vec![Reply::Speak { text: "Option two, sure.", ms: 200, beta: false }]);
    let url = fake.clone().serve().await?;
    let mut s = model(&url, "test-key").open(setup(), CancellationToken::new())?;
    s.input.send(S2sInput::Typed("(The caller pressed the keys 2 on their keypad.)".into())).await?;
    let (words, _, _, done) = answer(&mut s.events).await;
    assert!(done && words == "Option two, sure.", "{words:?}");
    let item = &fake.of(0, "conversation.item.create")[0]["item"];
    assert_eq!((item["type"].as_str(), item["role"].as_str()), (Some("message"), Some("user")));
    assert_eq!(
        item["content"][0],
        json!({"type": "input_text", "text": "(The caller pressed the keys 2 on their keypad.)"})
    );
    assert!(fake.of(0, "input_audio_buffer.commit").is_empty(), "keys are not the audio buffer");
    Ok(())
}

#[tokio::test]
async fn the_beta_event_names_are_read_too() -> TestResult {
    let fake = Fake::new(vec![Reply::Speak { text: "Hello there.", ms: 400, beta: true }]);
    let url = fake.clone().serve().await?;
    let mut s = model(&url, "test-key").open(setup(), CancellationToken::new())?;
    s.input.send(S2sInput::Say("Hello there.".into())).await?;
    let (words, samples, _, done) = answer(&mut s.events).await;
    assert!(done && words == "Hello there." && samples > 5000, "{words:?} {samples} {done}");
    let create = &fake.of(0, "response.create")[0];
    let instructions = create["response"]["instructions"].as_str().unwrap_or_default();
    assert!(instructions.contains("Hello there."), "{create}");
    Ok(())
}

#[tokio::test]
async fn a_session_the_server_closes_goes_on_in_a_new_one_with_the_conversation() -> TestResult {
    let fake = Fake::new(vec![
        Reply::SpeakThenClose { text: "We open at nine." },
        Reply::Speak { text: "Until five.", ms: 200, beta: false },
    ]);
    let url = fake.clone().serve().await?;
    let mut s = model(&url, "test-key").open(setup(), CancellationToken::new())?;
    s.input.send(S2sInput::Respond { said: "When do you open?".into() }).await?;
    let (words, _, _, done) = answer(&mut s.events).await;
    assert!(done && words == "We open at nine.");
    match tokio::time::timeout(Duration::from_secs(5), s.events.recv()).await? {
        Some(Ok(S2sEvent::Reconnected { attempt: 1 })) => {}
        other => panic!("not reconnected: {other:?}"),
    }
    // The new session was told the conversation so far, then answers on.
    until_seen(&fake, 1, "session.update").await;
    let items: Vec<Value> =
        fake.of(1, "conversation.item.create").iter().map(|e| e["item"].clone()).collect();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        (items[0]["role"].as_str(), items[0]["content"][0]["text"].as_str()),
        (Some("user"), Some("When do you open?"))
    );
    assert_eq!(items[0]["content"][0]["type"], "input_text");
    assert_eq!(
        (items[1]["role"].as_str(), items[1]["content"][0]["text"].as_str()),
        (Some("assistant"), Some("We open at nine."))
    );
    assert_eq!(items[1]["content"][0]["type"], "output_text");
    s.input.send(S2sInput::Respond { said: "And when do you close?".into() }).await?;
    let (words, _, _, done) = answer(&mut s.events).await;
    assert!(done && words == "Until five.", "{words:?}");
    Ok(())
}

#[tokio::test]
async fn a_refused_key_is_reported_as_unauthorized() -> TestResult {
    let url = Fake::new(vec![]).serve().await?;
    let mut s = model(&url, "wrong-key").open(setup(), CancellationToken::new())?;
    match tokio::time::timeout(Duration::from_secs(5), s.events.recv()).await? {
        Some(Err(ProviderError::Unauthorized { .. })) => Ok(()),
        other => panic!("{other:?}"),
    }
}

mod session {
    //! Sessions whose agent answers through the Realtime client, on the
    //! transport's 20 ms clock (real time: the server is a real socket),
    //! with the real WebRTC VAD and a scripted recogniser for the turns.

    use super::*;
    use voxgate_pipeline::dsp::vad::{WebRtcMode, WebRtcVad};
    use voxgate_pipeline::providers::scripted::{
        LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts, SttScript,
    };
    use voxgate_pipeline::session::tools::{HttpTool, Tool};
    use voxgate_pipeline::session::{
        CallEventKind, CallLog, EndReason, Providers, Session, SessionConfig, SessionParts, Speaker,
    };

    fn fixture(name: &str) -> Vec<i16> {
        let path = format!("{}/../fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        reader.samples::<i16>().map(|s| s.expect("sample")).collect()
    }

    /// A call of `ms`: the caller says the fixture `speech` at each ms,
    /// the recogniser hears `said` in turn, and the model is at `url`
    /// (none: it is not there). What the text model and the voice were
    /// asked, the frames of sound the caller got, and the call log.
    pub(super) struct Call {
        pub(super) llm: Arc<ScriptedLlm>,
        pub(super) tts: Arc<ScriptedTts>,
        played: usize,
        pub(super) log: CallLog,
    }

    pub(super) async fn call(
        url: &str,
        config: SessionConfig,
        said: &[&str],
        speech: &[(usize, &str)],
        ms: usize,
    ) -> Result<Call, Box<dyn std::error::Error>> {
        let llm = Arc::new(ScriptedLlm::new(vec![LlmScript::text("We open at nine.")]));
        let tts = Arc::new(ScriptedTts::default());
        let providers = Providers {
            stt: Arc::new(ScriptedStt::new(said.iter().map(|t| SttScript::Text((*t).into())).collect())),
            llm: llm.clone(),
            tts: tts.clone(),
            knowledge: None,
            speech_to_speech: Some(Arc::new(model(url, "test-key"))),
        };
        let vad = Box::new(WebRtcVad::new(WebRtcMode::Aggressive));
        let now = voxgate_pipeline::call::now;
        let mut session = Session::start(now(), SessionParts { config, providers, vad, recording: None });
        let mut caller = vec![0i16; 16 * ms];
        for (at_ms, name) in speech {
            let audio = fixture(name);
            caller[at_ms * 16..at_ms * 16 + audio.len()].copy_from_slice(&audio);
        }
        let mut ticks = support::Ticks::new();
        let mut played = 0;
        for n in 0..caller.len() / 320 {
            ticks.next(&mut session).await;
            if session.is_ended() {
                break;
            }
            let frame: &[i16; 320] = caller[n * 320..(n + 1) * 320].try_into()?;
            session.handle_caller_frame(now(), frame);
            while let Some(f) = session.poll_frame() {
                if f.iter().any(|&s| s != 0) {
                    played += 1;
                }
            }
            while session.poll_event().is_some() {}
        }
        let log = session.finish(now());
        Ok(Call { llm, tts, played, log })
    }

    pub(super) fn agent_lines(log: &CallLog) -> Vec<(&str, bool)> {
        log.transcript
            .iter()
            .filter(|l| l.speaker == Speaker::Agent)
            .map(|l| (l.text.as_str(), l.interrupted))
            .collect()
    }

    #[tokio::test]
    async fn the_agent_greets_answers_and_is_cut_off_through_the_realtime_model() -> TestResult {
        let fake = Fake::new(vec![
            Reply::Speak { text: "Hello, Sunrise Bakery here.", ms: 600, beta: false },
            Reply::Speak {
                text: "We open at nine, and let me tell you all about our cakes.",
                ms: 5000,
                beta: false,
            },
            Reply::Speak { text: "Sure, a table for two.", ms: 600, beta: false },
        ]);
        let url = fake.clone().serve().await?;
        let mut config = SessionConfig {
            system_prompt: "You answer for Sunrise Bakery.".into(),
            ..SessionConfig::default()
        };
        config.turn.greeting = Some("Hello, Sunrise Bakery here.".into());
        // The caller asks at 1.5 s, and talks over the answer at 8 s.
        let speech = [(1500, "store_hours_16k.wav"), (8000, "book_table_16k.wav")];
        let c = call(&url, config, &["When do you open?", "Book a table for two."], &speech, 14_000).await?;
        // The model spoke all of it; the text model and the voice were never asked.
        assert!(c.llm.requests().is_empty() && c.tts.requests() == 0, "the text model or voice answered");
        assert!(c.played > 100, "{} frames of the model's voice", c.played);
        let agent = agent_lines(&c.log);
        assert_eq!(agent.first(), Some(&("Hello, Sunrise Bakery here.", false)), "{agent:?}");
        assert!(agent.get(1).is_some_and(|(t, cut)| *cut && t.starts_with("We open at nine")), "{agent:?}");
        assert_eq!(agent.get(2), Some(&("Sure, a table for two.", false)), "{agent:?}");
        // The greeting was the model's, said as a line.
        let first = &fake.of(0, "response.create")[0];
        assert!(
            first["response"]["instructions"].as_str().is_some_and(|i| i.contains("Sunrise Bakery here")),
            "{first}"
        );
        // The caller's audio went to the model, and each turn was committed before its answer.
        assert!(fake.of(0, "input_audio_buffer.append").len() > 50);
        assert_eq!(fake.of(0, "input_audio_buffer.commit").len(), 2);
        // The model was told exactly how much of its answer the caller heard.
        let heard = c.log.events.iter().find_map(|e| match e.kind {
            CallEventKind::Interrupted { heard_ms, .. } => Some(heard_ms),
            _ => None,
        });
        let truncate = fake.of(0, "conversation.item.truncate");
        assert_eq!(truncate.len(), 1, "{truncate:?}");
        assert_eq!(truncate[0]["audio_end_ms"].as_u64(), heard, "{truncate:?}");
        assert!(heard.is_some_and(|ms| (500..5000).contains(&ms)), "{heard:?}");
        Ok(())
    }

    /// The model calls the agent's HTTP tool (on a local server): its
    /// result goes back to the model, which answers; then it ends the call.
    #[tokio::test]
    async fn the_models_tool_calls_run_the_agents_tools_and_end_the_call() -> TestResult {
        use axum::Json;
        use axum::routing::post;

        let posted: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = posted.clone();
        let app = axum::Router::new().route(
            "/book",
            post(move |Json(args): Json<Value>| async move {
                kept.lock().expect("lock").push(args);
                Json(json!({"booked": true, "table": 7}))
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let book = format!("http://{}/book", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let schema =
            json!({"type": "object", "properties": {"people": {"type": "integer"}}, "required": ["people"]});
        let tool =
            HttpTool::new("book_table", "Books a table", schema, &book, vec![], Duration::from_secs(5))?
                // The endpoint is on loopback, which the default client refuses.
                .through(voxgate_guarded_http::shared(true));
        let fake = Fake::new(vec![
            Reply::Call { name: "book_table", arguments: r#"{"people": 2}"# },
            Reply::Speak { text: "Table seven is yours.", ms: 600, beta: false },
            Reply::Call { name: "end_call", arguments: "{}" },
            // The goodbye, said by the model as a line.
            Reply::Speak { text: "Goodbye!", ms: 400, beta: false },
        ]);
        let url = fake.clone().serve().await?;
        let mut config =
            SessionConfig { tools: vec![Arc::new(tool) as Arc<dyn Tool>], ..SessionConfig::default() };
        config.turn.greeting = None;
        config.turn.goodbye = Some("Goodbye!".into());
        let speech = [(500, "book_table_16k.wav"), (6000, "store_hours_16k.wav")];
        let c =
            call(&url, config, &["A table for two, please.", "Thanks, that's all."], &speech, 14_000).await?;
        assert_eq!(posted.lock().map(|p| p.clone()).unwrap_or_default(), [json!({"people": 2})]);
        let output = &fake.of(0, "conversation.item.create")[0]["item"];
        assert_eq!(output["type"], "function_call_output");
        assert_eq!(output["output"], r#"{"booked":true,"table":7}"#);
        // The model was told its tools, with the built-ins.
        let tools: Vec<String> = fake.of(0, "session.update")[0]["session"]["tools"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert!(
            tools.contains(&"book_table".to_owned()) && tools.contains(&"end_call".to_owned()),
            "{tools:?}"
        );
        let ran = c.log.events.iter().any(
            |e| matches!(&e.kind, CallEventKind::ToolCalled { name, ok: true, .. } if name == "book_table"),
        );
        assert!(ran, "{:?}", c.log.events);
        // end_call: the model said nothing more, so the agent's goodbye (in the model's voice), then the end.
        let agent = agent_lines(&c.log);
        assert_eq!(agent, [("Table seven is yours.", false), ("Goodbye!", false)], "{agent:?}");
        assert_eq!(c.log.end, EndReason::AgentEnded);
        assert!(c.tts.requests() == 0 && c.llm.requests().is_empty(), "the text model or voice answered");
        // The built-in's result does not ask the model to go on: two answers, the tool's round, the goodbye.
        let creates = fake.of(0, "response.create");
        assert_eq!(creates.len(), 4, "{creates:?}");
        assert!(creates[3]["response"]["instructions"].as_str().is_some_and(|i| i.contains("Goodbye!")));
        Ok(())
    }
}

mod fallback {
    //! A model that fails hands the call to the agent's text model and voice.

    use super::*;
    use voxgate_pipeline::session::{CallEventKind, SessionConfig};

    #[tokio::test]
    async fn a_failing_model_hands_the_call_to_the_text_model_and_the_voice() -> TestResult {
        let fake = Fake::new(vec![Reply::Fail]);
        let url = fake.clone().serve().await?;
        let mut config = SessionConfig::default();
        config.turn.greeting = None;
        // Asked again once the fallback line (3.3 s) has played.
        let speech = [(500, "store_hours_16k.wav"), (8000, "store_hours_16k.wav")];
        let said = ["When do you open?", "When do you open, please?"];
        let c = super::session::call(&url, config, &said, &speech, 14_000).await?;
        let agent: Vec<&str> = super::session::agent_lines(&c.log).into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            agent,
            [SessionConfig::default().fallback_line.as_str(), "We open at nine."],
            "{:#?}",
            c.log
        );
        assert_eq!(c.llm.requests().len(), 1, "the text model answered the next turn");
        assert_eq!(c.tts.requests(), 2, "the voice said the fallback and the answer");
        let failed =
            c.log.events.iter().filter(|e| matches!(e.kind, CallEventKind::ProviderFailed { .. })).count();
        assert_eq!(failed, 1, "one failure, reported once: {:?}", c.log.events);
        Ok(())
    }
}
