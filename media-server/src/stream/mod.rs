//! Calls that arrive as a websocket media stream: telephony providers that
//! speak the Twilio Media Streams protocol ([`twilio`]), and simple
//! clients with plain JSON frames ([`json`]). Either way the audio goes
//! into the same pipeline session as a phone call's, and the call is
//! recorded and logged the same way.
//!
//! A stream must `start` within 10 s. Bad messages (bad JSON, bad base64,
//! wrong sizes, audio before `start`) are counted and ignored; 50 of them,
//! or more than 250 messages in a second, close the socket with a reason.

mod json;
mod protocol;
mod twilio;

pub use protocol::{FrameError, Incoming, Protocol};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::time::Instant;
use voxgate_pipeline::metrics::{ChannelLabel, metrics};
use voxgate_pipeline::session::{self, Control, Frame, SessionEvent, SessionParts, Speaker};

use crate::calls::{self, CallContext};
use crate::http::AppState;

/// How long a stream may take to `start`.
const START_WITHIN: Duration = Duration::from_secs(10);
/// Bad messages after which the socket is closed.
const MAX_BAD: u32 = 50;
/// Messages per second above which the socket is closed.
const MAX_PER_SECOND: u32 = 250;
/// The largest message accepted (a second of 16 kHz PCM in base64 is ~43 KB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// `?key=` (the media key) and `?agent=` (an agent's id; none: the
/// configured agent) on the public media URLs.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    key: String,
    #[serde(default)]
    pub agent: String,
}

/// The refusal of a client without the media key, if one is set.
pub fn refused(state: &AppState, query: &KeyQuery) -> Option<Response> {
    let key = state.calls.config.http.media_key.expose();
    (!key.is_empty() && !crate::http::same_secret(&query.key, key))
        .then(|| (StatusCode::UNAUTHORIZED, "missing or wrong key").into_response())
}

/// A public websocket endpoint: checks the media key, then upgrades with
/// messages of at most `max_message` bytes and runs `serve` on the socket.
pub fn upgrade<F, Fut>(
    ws: WebSocketUpgrade,
    state: &AppState,
    query: &KeyQuery,
    max_message: usize,
    serve: F,
) -> Response
where
    F: FnOnce(WebSocket, Arc<CallContext>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(r) = refused(state, query) {
        return r;
    }
    let calls = state.calls.clone();
    ws.max_message_size(max_message).on_upgrade(move |socket| serve(socket, calls))
}

/// `GET /v1/streams/twilio`: a Twilio Media Streams websocket.
pub async fn twilio(
    ws: WebSocketUpgrade,
    Query(query): Query<KeyQuery>,
    State(state): State<AppState>,
) -> Response {
    upgrade(ws, &state, &query, MAX_MESSAGE_BYTES, |socket, calls| async move {
        match twilio::Twilio::new() {
            Ok(protocol) => serve(socket, protocol, calls, "twilio").await,
            Err(e) => tracing::error!(error = %e, "stream codec"),
        }
    })
}

/// `GET /v1/streams/json`: the plain JSON stream.
pub async fn json(
    ws: WebSocketUpgrade,
    Query(query): Query<KeyQuery>,
    State(state): State<AppState>,
) -> Response {
    upgrade(ws, &state, &query, MAX_MESSAGE_BYTES, |socket, calls| {
        serve(socket, json::Json::default(), calls, "websocket")
    })
}

/// Counts what a client sends, to stop floods and garbage.
pub struct Limits {
    channel: &'static str,
    bad: u32,
    window: Instant,
    in_window: u32,
}

impl Limits {
    pub fn new(channel: &'static str) -> Self {
        Self { channel, bad: 0, window: Instant::now(), in_window: 0 }
    }

    /// One more message; the reason to close, if there is one.
    pub fn message(&mut self) -> Option<&'static str> {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.in_window = 0;
        }
        self.in_window += 1;
        (self.in_window > MAX_PER_SECOND).then_some("too many messages")
    }

    /// One more bad message; the reason to close, if there is one.
    pub fn bad(&mut self, why: &dyn std::fmt::Display) -> Option<&'static str> {
        self.bad += 1;
        metrics().bad_frames.get_or_create(&ChannelLabel { channel: self.channel }).inc();
        tracing::debug!(channel = self.channel, error = %why, "bad stream message ignored");
        (self.bad >= MAX_BAD).then_some("too many bad messages")
    }
}

/// Closes `socket` with `code` and `reason`.
pub async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    tracing::info!(code, reason, "closing a media stream");
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Runs one stream: waits for `start`, then bridges it to a session.
async fn serve<P: Protocol>(
    mut socket: WebSocket,
    mut protocol: P,
    calls: Arc<CallContext>,
    channel: &'static str,
) {
    let mut limits = Limits::new(channel);
    let received = std::time::Instant::now();
    let deadline = Instant::now() + START_WITHIN;
    let (agent, external_id, caller) = loop {
        let message = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => return close(socket, close_code::POLICY, "no start within 10 s").await,
            Ok(None | Some(Err(_))) => return,
            Ok(Some(Ok(m))) => m,
        };
        if let Some(reason) = limits.message() {
            return close(socket, close_code::POLICY, reason).await;
        }
        let problem = match message {
            Message::Text(text) => match protocol.parse(text.as_str()) {
                Ok(Incoming::Start { agent, external_id, caller }) => break (agent, external_id, caller),
                Ok(Incoming::Nothing) => continue,
                Ok(other) => limits.bad(&format!("{other:?} before start")),
                Err(e) => limits.bad(&e),
            },
            Message::Binary(_) => limits.bad(&"a binary message"),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if let Some(reason) = problem {
            return close(socket, close_code::POLICY, reason).await;
        }
    };
    let agent = match calls.agents.get(agent.as_deref().unwrap_or_default()).await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::info!(error = %e, "media stream for no agent");
            return close(socket, close_code::POLICY, "unknown agent").await;
        }
    };
    let id = calls::new_id();
    tracing::info!(call_id = %id, channel, external_id = ?external_id, "media stream started");
    let vad = match voxgate_pipeline::dsp::vad::build(&calls.config.vad_config()) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "voice activity detector");
            return close(socket, close_code::ERROR, "server error").await;
        }
    };
    let info = calls::CallInfo {
        caller,
        external_id: external_id.clone(),
        ..calls::CallInfo::for_agent(&id, channel, &agent)
    };
    calls::started(&calls, &info, &agent).await;
    let mut session = session::spawn(SessionParts {
        config: agent.session.clone(),
        providers: agent.providers.clone(),
        vad,
        recording: Some(calls::recording_path(&calls.config, &id)),
    });
    if let Some(ack) = protocol.started(&id) {
        let _ = socket.send(Message::Text(ack.into())).await;
    }
    metrics().call_setup.get_or_create(&ChannelLabel { channel }).observe(received.elapsed().as_secs_f64());
    let mut turn_marks = 0u64;
    let mut close_reason: Option<(u16, &'static str)> = None;
    let (mut client_gone, mut agent_audio) = (false, true);
    loop {
        tokio::select! {
            biased;
            // The agent's voice first, so a mark or a clear follows what it covers.
            frame = session.audio_out.recv(), if agent_audio => {
                let Some(frame) = frame else {
                    agent_audio = false;
                    continue;
                };
                if let Some(text) = protocol.audio(&frame)
                    && socket.send(Message::Text(text.into())).await.is_err()
                {
                    let _ = session.control.try_send(Control::Hangup);
                }
            }
            event = session.events.recv() => match event {
                Some(SessionEvent::Clear) => {
                    let _ = socket.send(Message::Text(protocol.clear().into())).await;
                }
                Some(SessionEvent::Transcript { speaker, text, is_final }) => {
                    if let Some(t) = protocol.transcript(speaker, &text, is_final) {
                        let _ = socket.send(Message::Text(t.into())).await;
                    }
                    // The agent starts a line: mark the end of what came before.
                    if speaker == Speaker::Agent {
                        turn_marks += 1;
                        let name = format!("line-{turn_marks}");
                        let _ = socket.send(Message::Text(protocol.mark(&name).into())).await;
                    }
                }
                Some(SessionEvent::Transfer { target }) => {
                    tracing::warn!(%target, "a media stream cannot be transferred; the call ends");
                }
                Some(SessionEvent::Dtmf { .. }) => {
                    tracing::warn!("a media stream cannot send keys");
                }
                Some(SessionEvent::Ended(_)) | None => break,
            },
            message = socket.recv(), if !client_gone => {
                let message = match message {
                    Some(Ok(m)) => m,
                    // The client went away.
                    None | Some(Err(_)) => {
                        client_gone = true;
                        let _ = session.control.try_send(Control::Hangup);
                        continue;
                    }
                };
                let mut problem = limits.message();
                match message {
                    Message::Text(text) => match protocol.parse(text.as_str()) {
                        Ok(Incoming::Audio(frames)) => {
                            for frame in frames {
                                // A client faster than real time loses what does not fit.
                                let _ = session.audio_in.try_send(frame);
                            }
                        }
                        Ok(Incoming::Dtmf(key)) => {
                            let _ = session.control.try_send(Control::Dtmf(key));
                        }
                        Ok(Incoming::Stop) => {
                            let _ = session.control.try_send(Control::Hangup);
                        }
                        Ok(Incoming::Mark(name)) => tracing::debug!(call_id = %id, %name, "the client played up to a mark"),
                        Ok(Incoming::Nothing) => {}
                        Ok(Incoming::Start { .. }) => problem = problem.or(limits.bad(&"a second start")),
                        Err(e) => problem = problem.or(limits.bad(&e)),
                    },
                    Message::Binary(_) => problem = problem.or(limits.bad(&"a binary message")),
                    Message::Close(_) => {
                        let _ = session.control.try_send(Control::Hangup);
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                }
                if let Some(reason) = problem {
                    // Read no more: the call ends and the socket closes with this reason.
                    close_reason = Some((close_code::POLICY, reason));
                    client_gone = true;
                    let _ = session.control.try_send(Control::Hangup);
                }
            }
        }
    }
    match session.task.await {
        Ok(log) => calls::save_log(&calls, &info, &log).await,
        Err(e) => tracing::error!(call_id = %id, error = %e, "session failed"),
    }
    let (code, reason) = close_reason.unwrap_or((close_code::NORMAL, "call ended"));
    close(socket, code, reason).await;
}
