//! A speech-to-speech model over OpenAI's Realtime websocket protocol, in
//! its GA form (`session.update` with `session.type = "realtime"`, audio as
//! `audio/pcm` at 24 kHz, `response.output_audio.delta`); the beta event
//! names (`response.audio.delta`, ...) are read too, for servers that
//! still speak them.
//!
//! Turns are the call's ([`SpeechToSpeech`]): the server's own VAD is off
//! (`turn_detection: null`); the caller's audio is appended as it comes,
//! and at the end of the caller's turn the buffer is committed and a
//! response asked for. Barge-in cancels the response and truncates its
//! audio item to what the caller heard (`conversation.item.truncate` with
//! `audio_end_ms`). Tool calls (`response.function_call_arguments.done`)
//! go to the session; their results come back as `function_call_output`
//! items, then the model goes on. When the provider closes a session (they
//! are limited in length), a new one starts with the conversation so far
//! replayed as text items.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;

use super::{
    CancellationToken, ProviderError, ProviderName, S2sEvent, S2sInput, S2sSetup, S2sStream, SpeechToSpeech,
    ToolCall,
};

const NAME: ProviderName = "openai-realtime";

/// The API's PCM rate, both ways.
const API_RATE: SampleRate = SampleRate::HZ_24000;

/// Errors the protocol reports that need no action: a cancel that came
/// after the response ended, a commit of an empty buffer.
const HARMLESS_ERRORS: [&str; 2] = ["response_cancel_not_active", "input_audio_buffer_commit_empty"];

/// Where and how to reach the model.
#[derive(Debug, Clone)]
pub struct OpenAiRealtimeConfig {
    /// The websocket endpoint, without the model (`wss://api.openai.com/v1/realtime`).
    pub url: String,
    /// Sent as a bearer token; empty: none (a local server).
    pub api_key: String,
    pub model: String,
    pub voice: String,
    /// The model that transcribes the caller for the model's own record
    /// (the call's transcript is the call's recogniser's); empty: none.
    pub transcription_model: String,
    /// New sessions tried in a row after the provider closed one.
    pub max_reconnects: u32,
}

impl Default for OpenAiRealtimeConfig {
    fn default() -> Self {
        Self {
            url: "wss://api.openai.com/v1/realtime".to_owned(),
            api_key: String::new(),
            model: "gpt-realtime".to_owned(),
            voice: "marin".to_owned(),
            transcription_model: String::new(),
            max_reconnects: 3,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct OpenAiRealtime {
    config: Arc<OpenAiRealtimeConfig>,
}

impl OpenAiRealtime {
    #[must_use]
    pub fn new(config: OpenAiRealtimeConfig) -> Self {
        Self { config: Arc::new(config) }
    }
}

impl SpeechToSpeech for OpenAiRealtime {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn open(&self, setup: S2sSetup, cancel: CancellationToken) -> Result<S2sStream, ProviderError> {
        let (input, input_rx) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(256);
        let conversation = Conversation::new(setup)?;
        tokio::spawn(run(self.config.clone(), conversation, input_rx, events_tx, cancel));
        Ok(S2sStream { input, events })
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Events = mpsc::Sender<Result<S2sEvent, ProviderError>>;

/// Reads the HTTP status of a refused handshake.
fn map_error(e: tungstenite::Error) -> ProviderError {
    if let tungstenite::Error::Http(response) = &e {
        let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
        return ProviderError::from_status(NAME, response.status().as_u16(), body);
    }
    ProviderError::Connection { provider: NAME, message: e.to_string() }
}

/// TLS with the system's roots, on the aws-lc-rs provider the workspace builds.
fn tls() -> Result<Connector, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProviderError::Connection { provider: NAME, message: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

async fn connect(config: &OpenAiRealtimeConfig) -> Result<Ws, ProviderError> {
    let join = if config.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{join}model={}", config.url, config.model);
    let refused = |message: String| ProviderError::Rejected { provider: NAME, status: 0, message };
    let mut request = url.as_str().into_client_request().map_err(|e| refused(e.to_string()))?;
    if !config.api_key.is_empty() {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", config.api_key))
            .map_err(|_| refused("the API key cannot go in a header".into()))?;
        request.headers_mut().insert("Authorization", bearer);
    }
    let connector = if url.starts_with("wss:") { Some(tls()?) } else { None };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
        .await
        .map_err(map_error)?;
    Ok(ws)
}

/// Runs a call's session: connects, and connects again (with the
/// conversation so far) when the provider closes it, until the call ends.
async fn run(
    config: Arc<OpenAiRealtimeConfig>,
    mut conversation: Conversation,
    mut input: mpsc::Receiver<S2sInput>,
    events: Events,
    cancel: CancellationToken,
) {
    let mut attempt = 0;
    loop {
        let connected = tokio::select! {
            () = cancel.cancelled() => return,
            ws = connect(&config) => ws,
        };
        let mut ws = match connected {
            Ok(ws) => ws,
            Err(e) if e.is_retryable() && attempt < config.max_reconnects => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "OpenAI Realtime: connecting failed; trying again");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                continue;
            }
            Err(e) => {
                let _ = events.send(Err(e)).await;
                return;
            }
        };
        let started = conversation.start(&mut ws, &config).await;
        if started.is_ok() && attempt > 0 {
            let _ = events.send(Ok(S2sEvent::Reconnected { attempt })).await;
        }
        let why = match started {
            Ok(()) => match conversation.drive(&mut ws, &mut input, &events, &cancel).await {
                Ok(Stop::Done) => {
                    let _ = ws.close(None).await;
                    return;
                }
                Ok(Stop::Closed { answered }) => {
                    if answered {
                        // The session worked: a long one's end is not a failing provider.
                        attempt = 0;
                    }
                    "the provider closed the session".to_owned()
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        attempt += 1;
        if attempt > config.max_reconnects {
            let _ = events.send(Err(ProviderError::Connection { provider: NAME, message: why })).await;
            return;
        }
        tracing::info!(%why, attempt, "OpenAI Realtime: a new session, with the conversation so far");
        if conversation.lose_answer() {
            let message = format!("{why}, mid-answer");
            let _ = events.send(Err(ProviderError::Connection { provider: NAME, message })).await;
        }
    }
}

/// Why [`Conversation::drive`] stopped.
enum Stop {
    /// The call is over.
    Done,
    /// The provider closed the session; `answered`: it gave an answer first.
    Closed { answered: bool },
}

/// The call's side of the protocol: what was said (for a new session), the
/// response under way, and the resamplers between 16 and 24 kHz.
struct Conversation {
    setup: S2sSetup,
    tools: Vec<Value>,
    /// (the caller said it, the text), in order.
    said: Vec<(bool, String)>,
    /// The response the server is running, until its `response.done`.
    active: Option<String>,
    /// A `response.create` sent and not yet `response.created`.
    requested: bool,
    /// The caller barged in before the requested response was created.
    cancel_next: bool,
    /// Responses cancelled by barge-in: their late events are dropped.
    cancelled: HashSet<String>,
    /// A `response.create` waiting for the active response to end.
    queued: Option<Value>,
    /// The audio item being played, for a truncation.
    audio_item: Option<String>,
    /// The active response called tools: the answer goes on after their results.
    called_tools: bool,
    /// Tool calls without a result yet.
    pending_tools: usize,
    /// A tool's result asks the model to go on.
    more: bool,
    up: FrameResampler,
    up_pending: Vec<i16>,
    down: FrameResampler,
    down_pending: Vec<i16>,
}

impl Conversation {
    fn new(setup: S2sSetup) -> Result<Self, ProviderError> {
        let resampler = |from, to| {
            FrameResampler::new(from, to)
                .map_err(|e| ProviderError::Protocol { provider: NAME, message: e.to_string() })
        };
        let tools = setup
            .tools
            .iter()
            .map(|t| {
                let parameters: Value = serde_json::from_str(&t.parameters).unwrap_or_else(|_| json!({}));
                json!({"type": "function", "name": t.name, "description": t.description, "parameters": parameters})
            })
            .collect();
        Ok(Self {
            setup,
            tools,
            said: Vec::new(),
            active: None,
            requested: false,
            cancel_next: false,
            cancelled: HashSet::new(),
            queued: None,
            audio_item: None,
            called_tools: false,
            pending_tools: 0,
            more: false,
            up: resampler(SampleRate::HZ_16000, API_RATE)?,
            up_pending: Vec::new(),
            down: resampler(API_RATE, SampleRate::HZ_16000)?,
            down_pending: Vec::new(),
        })
    }

    /// Configures a new session and replays the conversation so far.
    async fn start(&mut self, ws: &mut Ws, config: &OpenAiRealtimeConfig) -> Result<(), ProviderError> {
        let pcm = json!({"type": "audio/pcm", "rate": API_RATE.0});
        let mut input = json!({"format": pcm, "turn_detection": null});
        if !config.transcription_model.is_empty() {
            input["transcription"] = json!({"model": config.transcription_model});
        }
        let session = json!({
            "type": "realtime",
            "instructions": self.setup.instructions,
            "output_modalities": ["audio"],
            "audio": {"input": input, "output": {"format": pcm, "voice": config.voice}},
            "tools": self.tools,
            "tool_choice": "auto",
        });
        send(ws, json!({"type": "session.update", "session": session})).await?;
        for (caller, text) in &self.said {
            let (role, kind) = if *caller { ("user", "input_text") } else { ("assistant", "output_text") };
            let item = json!({"type": "message", "role": role, "content": [{"type": kind, "text": text}]});
            send(ws, json!({"type": "conversation.item.create", "item": item})).await?;
        }
        Ok(())
    }

    /// An answer was under way when the session closed: it is lost.
    fn lose_answer(&mut self) -> bool {
        let lost =
            self.active.take().is_some() || self.requested || self.pending_tools > 0 || self.queued.is_some();
        self.requested = false;
        self.queued = None;
        self.pending_tools = 0;
        self.called_tools = false;
        self.audio_item = None;
        lost
    }

    /// Carries the call's input to the session and its events back, until
    /// the call ends or the session closes.
    async fn drive(
        &mut self,
        ws: &mut Ws,
        input: &mut mpsc::Receiver<S2sInput>,
        events: &Events,
        cancel: &CancellationToken,
    ) -> Result<Stop, ProviderError> {
        let mut answered = false;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(Stop::Done),
                next = input.recv() => match next {
                    Some(i) => self.handle_input(ws, i, events).await?,
                    None => return Ok(Stop::Done),
                },
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(event) = serde_json::from_str::<Value>(&text) else {
                            tracing::warn!("OpenAI Realtime: an event that is not JSON");
                            continue;
                        };
                        answered |= self.handle_event(ws, &event, events).await?;
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(Stop::Closed { answered }),
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    async fn handle_input(
        &mut self,
        ws: &mut Ws,
        input: S2sInput,
        events: &Events,
    ) -> Result<(), ProviderError> {
        match input {
            S2sInput::Audio(samples) => {
                let audio = self.upsample(&samples);
                if !audio.is_empty() {
                    send(ws, json!({"type": "input_audio_buffer.append", "audio": pcm_base64(&audio)}))
                        .await?;
                }
            }
            S2sInput::Respond { said } => {
                if !said.is_empty() {
                    self.said.push((true, said));
                }
                send(ws, json!({"type": "input_audio_buffer.commit"})).await?;
                self.respond(ws, json!({"type": "response.create"})).await?;
            }
            S2sInput::Typed(text) => {
                let content = json!([{"type": "input_text", "text": text}]);
                let item = json!({"type": "message", "role": "user", "content": content});
                send(ws, json!({"type": "conversation.item.create", "item": item})).await?;
                self.said.push((true, text));
                self.respond(ws, json!({"type": "response.create"})).await?;
            }
            S2sInput::Say(line) => {
                let instructions = format!("Say exactly this, word for word, and nothing else: {line}");
                let create = json!({"type": "response.create", "response": {"instructions": instructions}});
                self.respond(ws, create).await?;
            }
            S2sInput::Interrupt { heard_ms } => {
                self.queued = None;
                self.pending_tools = 0;
                self.more = false;
                match self.active.clone() {
                    Some(id) => {
                        send(ws, json!({"type": "response.cancel"})).await?;
                        self.cancelled.insert(id);
                    }
                    None if self.requested => self.cancel_next = true,
                    None => {}
                }
                if let Some(item) = self.audio_item.take() {
                    let truncate = json!({"type": "conversation.item.truncate", "item_id": item,
                                          "content_index": 0, "audio_end_ms": heard_ms});
                    send(ws, truncate).await?;
                }
            }
            S2sInput::ToolResult { call_id, output, respond } => {
                let item = json!({"type": "function_call_output", "call_id": call_id, "output": output});
                send(ws, json!({"type": "conversation.item.create", "item": item})).await?;
                self.pending_tools = self.pending_tools.saturating_sub(1);
                if respond {
                    self.more = true;
                }
                if self.pending_tools == 0 && std::mem::take(&mut self.more) {
                    self.respond(ws, json!({"type": "response.create"})).await?;
                } else if self.pending_tools == 0 && self.active.is_none() && !self.requested {
                    // The last result came after its response ended, and asks for no more.
                    let _ = events.send(Ok(S2sEvent::Done)).await;
                }
            }
        }
        Ok(())
    }

    /// Asks for a response now, or once the active one has ended.
    async fn respond(&mut self, ws: &mut Ws, create: Value) -> Result<(), ProviderError> {
        if self.active.is_some() || self.requested {
            self.queued = Some(create);
            return Ok(());
        }
        self.requested = true;
        send(ws, create).await
    }

    /// One server event; true when it ended an answer.
    async fn handle_event(
        &mut self,
        ws: &mut Ws,
        event: &Value,
        events: &Events,
    ) -> Result<bool, ProviderError> {
        let kind = event["type"].as_str().unwrap_or_default();
        let response_id = event["response_id"].as_str().or_else(|| event["response"]["id"].as_str());
        let dropped = response_id.is_some_and(|id| self.cancelled.contains(id));
        let emit = |e: S2sEvent| events.send(Ok(e));
        match kind {
            "response.created" => {
                self.requested = false;
                self.called_tools = false;
                let id = response_id.unwrap_or_default().to_owned();
                if std::mem::take(&mut self.cancel_next) {
                    send(ws, json!({"type": "response.cancel"})).await?;
                    self.cancelled.insert(id.clone());
                }
                self.active = Some(id);
            }
            "response.output_audio.delta" | "response.audio.delta" if !dropped => {
                self.audio_item = event["item_id"].as_str().map(str::to_owned);
                let pcm = event["delta"]
                    .as_str()
                    .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
                let Some(pcm) = pcm else {
                    return Err(ProviderError::Protocol {
                        provider: NAME,
                        message: "audio that is not base64".into(),
                    });
                };
                let audio = self.downsample(&pcm);
                if !audio.is_empty() {
                    let _ = emit(S2sEvent::Audio(audio)).await;
                }
            }
            "response.output_audio_transcript.delta" | "response.audio_transcript.delta" if !dropped => {
                if let Some(delta) = event["delta"].as_str().filter(|d| !d.is_empty()) {
                    let _ = emit(S2sEvent::Text(delta.to_owned())).await;
                }
            }
            "response.output_audio_transcript.done" | "response.audio_transcript.done" if !dropped => {
                if let Some(text) = event["transcript"].as_str().filter(|t| !t.is_empty()) {
                    self.said.push((false, text.to_owned()));
                }
            }
            "response.function_call_arguments.done" if !dropped => {
                self.called_tools = true;
                self.pending_tools += 1;
                let text = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
                let call = ToolCall { id: text("call_id"), name: text("name"), arguments: text("arguments") };
                let _ = emit(S2sEvent::ToolCall(call)).await;
            }
            "response.done" => return self.response_done(ws, event, response_id, events).await,
            "conversation.item.input_audio_transcription.completed" => {
                if let Some(text) = event["transcript"].as_str().filter(|t| !t.trim().is_empty()) {
                    let _ = emit(S2sEvent::CallerText(text.trim().to_owned())).await;
                }
            }
            "error" => {
                let code = event["error"]["code"].as_str().unwrap_or_default();
                let message = event["error"]["message"].as_str().unwrap_or_default().to_owned();
                if HARMLESS_ERRORS.contains(&code) {
                    tracing::debug!(code, %message, "OpenAI Realtime: no matter");
                } else {
                    tracing::warn!(code, %message, "OpenAI Realtime: an error");
                    let _ = events
                        .send(Err(ProviderError::Rejected { provider: NAME, status: 400, message }))
                        .await;
                }
            }
            _ => {}
        }
        Ok(false)
    }

    async fn response_done(
        &mut self,
        ws: &mut Ws,
        event: &Value,
        id: Option<&str>,
        events: &Events,
    ) -> Result<bool, ProviderError> {
        self.active = None;
        let mut answered = false;
        if id.is_some_and(|id| self.cancelled.remove(id)) {
            // Barged in: the session has moved on.
        } else if event["response"]["status"] == "failed" {
            let message = event["response"]["status_details"].to_string();
            let _ = events.send(Err(ProviderError::Server { provider: NAME, status: 500 })).await;
            tracing::warn!(%message, "OpenAI Realtime: the response failed");
            self.called_tools = false;
        } else if self.called_tools && (self.pending_tools > 0 || self.queued.is_some()) {
            // The answer goes on once the tools' results are in.
        } else {
            answered = true;
            let _ = events.send(Ok(S2sEvent::Done)).await;
        }
        if let Some(create) = self.queued.take() {
            self.requested = true;
            send(ws, create).await?;
        }
        Ok(answered)
    }

    /// 16 kHz in, 24 kHz out.
    fn upsample(&mut self, samples: &[i16]) -> Vec<i16> {
        resample(&mut self.up, &mut self.up_pending, samples.iter().copied())
    }

    /// 24 kHz little-endian bytes in, 16 kHz out.
    fn downsample(&mut self, pcm: &[u8]) -> Vec<i16> {
        let samples = pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]));
        resample(&mut self.down, &mut self.down_pending, samples)
    }
}

/// `samples` through `resampler`, a 20 ms frame at a time; a part frame
/// waits in `pending` for the next.
fn resample(
    resampler: &mut FrameResampler,
    pending: &mut Vec<i16>,
    samples: impl Iterator<Item = i16>,
) -> Vec<i16> {
    pending.extend(samples);
    let (n_in, n_out) = (resampler.from_rate().samples_per_frame(), resampler.to_rate().samples_per_frame());
    let whole = pending.len() / n_in * n_in;
    let mut out = vec![0i16; whole / n_in * n_out];
    for (chunk, frame) in pending[..whole].chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        // A frame of the right length always resamples.
        let _ = resampler.process(chunk, frame);
    }
    pending.drain(..whole);
    out
}

fn pcm_base64(samples: &[i16]) -> String {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn send(ws: &mut Ws, event: Value) -> Result<(), ProviderError> {
    ws.send(Message::Text(event.to_string().into()))
        .await
        .map_err(|e| ProviderError::Connection { provider: NAME, message: e.to_string() })
}
