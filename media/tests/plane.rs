//! The media plane on its own, in one process on tokio's paused clock: its
//! router on a loopback listener, a directory lending one agent with
//! scripted providers, and hooks that keep what they are told, in place of
//! the control plane. A client speaks the JSON stream protocol to it as a
//! real one would; the waits the protocol sets (10 s to `start`) pass in
//! no time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt as _, StreamExt as _};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use voxgate_calls::{AgentDirectory, CallAgent, CallHooks, DirectoryError};
use voxgate_domain::{CallInfo, Channel};
use voxgate_media::MediaConfig;
use voxgate_media::calls::CallContext;
use voxgate_media::config::VadBackend;
use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts};
use voxgate_pipeline::session::{CallLog, Providers, SessionConfig, Speaker};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the agent answers.
const ANSWER: &str = "Four two, noted.";

/// The control plane's part, as the media plane sees it: one agent.
#[derive(Debug)]
struct OneAgent(CallAgent, tokio::sync::watch::Sender<u64>);

#[async_trait::async_trait]
impl AgentDirectory for OneAgent {
    fn configured(&self) -> CallAgent {
        self.0.clone()
    }
    async fn get(&self, id: &str) -> Result<CallAgent, DirectoryError> {
        if id.is_empty() { Ok(self.0.clone()) } else { Err(DirectoryError::Unknown(id.to_owned())) }
    }
    async fn routes(&self) -> Result<HashMap<String, String>, DirectoryError> {
        Ok(HashMap::new())
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.1.subscribe()
    }
    async fn twilio_auth_token(&self, _tenant: &str) -> Result<Option<String>, DirectoryError> {
        Ok(None)
    }
}

/// What the hooks were told, in order.
#[derive(Debug, Default)]
struct Kept {
    told: Mutex<Vec<(&'static str, CallInfo, Option<CallLog>)>>,
    ended: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl CallHooks for Kept {
    async fn started(&self, call: &CallInfo) {
        self.told.lock().expect("lock").push(("started", call.clone(), None));
    }
    async fn ended(&self, call: &CallInfo, log: &CallLog) {
        self.told.lock().expect("lock").push(("ended", call.clone(), Some(log.clone())));
        self.ended.notify_one();
    }
}

/// The media plane serving on a loopback port, with its hooks.
async fn plane(recordings: &std::path::Path) -> Result<(SocketAddr, Arc<Kept>), Box<dyn std::error::Error>> {
    let mut config = MediaConfig::default();
    config.vad.backend = VadBackend::Webrtc;
    config.recordings_dir = recordings.to_owned();
    let mut session = SessionConfig::default();
    session.turn.greeting = None;
    session.turn.reprompt_after_ms = None;
    let agent = CallAgent {
        id: None,
        tenant_id: None,
        name: "desk".into(),
        session,
        providers: Providers {
            stt: Arc::new(ScriptedStt::new(Vec::new())),
            llm: Arc::new(ScriptedLlm::new(vec![LlmScript::text(ANSWER)])),
            tts: Arc::new(ScriptedTts::default()),
            knowledge: None,
            speech_to_speech: None,
        },
        widget: config.widget.clone(),
        max_calls: 0,
        public: true,
        plan: voxgate_calls::PlanGate::default(),
        srtp: None,
        answering_machine: None,
    };
    let hooks = Arc::new(Kept::default());
    voxgate_media::calls::prepare(&config).await?;
    let calls = Arc::new(CallContext {
        admission: voxgate_media::admission::Admission::new(config.limits.clone()),
        config,
        agents: Arc::new(OneAgent(agent, tokio::sync::watch::channel(0).0)),
        hooks: hooks.clone(),
        default_tenant: "ten_default".into(),
        tokens: voxgate_calls::tokens::MediaTokens::new(b"test key"),
        rooms: None,
    });
    let state = voxgate_media::http::MediaState { calls, webrtc: Default::default() };
    let app = voxgate_media::http::router(state, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok((addr, hooks))
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr) -> Result<Socket, Box<dyn std::error::Error>> {
    Ok(tokio_tungstenite::connect_async(format!("ws://{addr}/v1/streams/json")).await?.0)
}

/// The close frame's code and reason, skipping what comes before it.
async fn closed(socket: &mut Socket) -> Result<(CloseCode, String), Box<dyn std::error::Error>> {
    while let Some(message) = socket.next().await {
        if let Message::Close(Some(frame)) = message? {
            return Ok((frame.code, frame.reason.to_string()));
        }
    }
    Err("the socket ended without a close frame".into())
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_never_starts_is_closed_after_ten_seconds() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let (addr, hooks) = plane(scratch.path()).await?;
    let mut socket = connect(addr).await?;
    let opened = Instant::now();
    let (code, reason) = closed(&mut socket).await?;
    assert_eq!((code, reason.as_str()), (CloseCode::Policy, "no start within 10 s"));
    let waited = opened.elapsed();
    assert!((Duration::from_secs(10)..Duration::from_secs(11)).contains(&waited), "{waited:?}");
    assert!(hooks.told.lock().expect("lock").is_empty(), "no call was made");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_streamed_call_is_reported_from_start_to_end_with_its_transcript() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let (addr, hooks) = plane(scratch.path()).await?;
    let mut socket = connect(addr).await?;
    socket.send(Message::text(r#"{"type": "start", "from": "+15550100"}"#)).await?;
    for digit in ["4", "2", "#"] {
        socket.send(Message::text(format!(r#"{{"type": "dtmf", "digit": "{digit}"}}"#))).await?;
    }
    // The agent's answer comes back as audio; the caller hangs up once it
    // has been quiet for 2 s (no reprompt comes: they are off).
    let mut heard = 0;
    let listen = async {
        while let Ok(message) = tokio::time::timeout(Duration::from_secs(2), socket.next()).await {
            let Some(message) = message else { return Err("closed before the answer".into()) };
            if let Message::Text(text) = message? {
                let event: serde_json::Value = serde_json::from_str(text.as_str())?;
                if event["type"] == "media" {
                    heard += BASE64.decode(event["data"].as_str().unwrap_or_default())?.len();
                }
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    tokio::time::timeout(Duration::from_secs(60), listen).await??;
    assert!(heard > 0, "no audio from the agent");
    socket.send(Message::text(r#"{"type": "stop"}"#)).await?;
    tokio::time::timeout(Duration::from_secs(30), hooks.ended.notified()).await?;

    let told = hooks.told.lock().expect("lock");
    let kinds: Vec<&str> = told.iter().map(|(kind, ..)| *kind).collect();
    assert_eq!(kinds, ["started", "ended"]);
    let (started, ended) = (&told[0].1, &told[1].1);
    assert_eq!(started.id, ended.id, "one call");
    assert_eq!(started.channel, Channel::Websocket);
    assert_eq!(started.caller.as_deref(), Some("+15550100"));
    let log = told[1].2.as_ref().ok_or("no log")?;
    let said = |who: Speaker| -> Vec<&str> {
        log.transcript.iter().filter(|l| l.speaker == who).map(|l| l.text.as_str()).collect()
    };
    assert_eq!(said(Speaker::Caller), ["42"]);
    assert_eq!(said(Speaker::Agent), [ANSWER]);
    Ok(())
}
