//! One stream's call: wait for `start`, then bridge the socket and the
//! call core on one loop.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use voxgate_domain::{CallId, Channel};
use voxgate_pipeline::call::{Action, Arrival, CallClock, CallCore, Output, Wake, now};
use voxgate_pipeline::session::{Control, Speaker, TransferFailure, TransferOutcome};
use voxgate_streams::{Incoming, Protocol};

use super::limits::{Limits, close};
use crate::calls::{CallContext, Carrier};
use crate::media_access::Access;
use crate::metrics::{ChannelLabel, metrics};

/// How long a stream may take to `start`.
const START_WITHIN: Duration = Duration::from_secs(10);

/// What the client said in `start`.
struct Start {
    agent: Option<String>,
    external_id: Option<String>,
    caller: Option<String>,
    token: Option<String>,
}

/// Waits up to 10 s for the client's `start`; `None` once the socket is
/// closed (with the reason, when there is one).
async fn wait_for_start<P: Protocol>(
    socket: &mut WebSocket,
    protocol: &mut P,
    limits: &mut Limits,
) -> Result<Start, Option<&'static str>> {
    let deadline = Instant::now() + START_WITHIN;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => return Err(Some("no start within 10 s")),
            Ok(None | Some(Err(_))) => return Err(None),
            Ok(Some(Ok(m))) => m,
        };
        if let Some(reason) = limits.message() {
            return Err(Some(reason));
        }
        let problem = match message {
            Message::Text(text) => match protocol.parse(text.as_str()) {
                Ok(Incoming::Start { agent, external_id, caller, token }) => {
                    return Ok(Start { agent, external_id, caller, token });
                }
                Ok(Incoming::Nothing) => continue,
                Ok(other) => limits.bad(&format!("{other:?} before start")),
                Err(e) => limits.bad(&e),
            },
            Message::Binary(_) => limits.bad(&"a binary message"),
            Message::Close(_) => return Err(None),
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if problem.is_some() {
            return Err(problem);
        }
    }
}

/// Runs one stream: waits for `start`, then bridges it to a call of the
/// agent `fixed` names (else the one `start` names), if `access` reaches it.
pub(super) async fn serve<P: Protocol>(
    mut socket: WebSocket,
    mut protocol: P,
    calls: Arc<CallContext>,
    channel: Channel,
    access: Access,
    fixed: Option<String>,
) {
    let mut limits = Limits::new(channel);
    let received = std::time::Instant::now();
    let start = match wait_for_start(&mut socket, &mut protocol, &mut limits).await {
        Ok(start) => start,
        Err(Some(reason)) => return close(socket, close_code::POLICY, reason).await,
        Err(None) => return,
    };
    // A token in `start` (a Twilio <Parameter>) must be valid, and opens its agent.
    let Some(access) = access.with_start_token(&calls.tokens, start.token.as_deref()) else {
        return close(socket, close_code::POLICY, "invalid or expired token").await;
    };
    let agent = match calls.agents.get(fixed.as_deref().or(start.agent.as_deref()).unwrap_or_default()).await
    {
        Ok(agent) if calls.may_use(&access, &agent) => agent,
        Ok(_) => return close(socket, close_code::POLICY, "unknown agent").await,
        Err(e) => {
            tracing::info!(error = %e, "media stream for no agent");
            return close(socket, close_code::POLICY, "unknown agent").await;
        }
    };
    // Within the limits, or closed with the limit met; held until the stream ends.
    let _seat = match calls.admit(channel, &agent) {
        Ok(seat) => seat,
        Err(full) => return close(socket, full.close_code(), full.text()).await,
    };
    let id = CallId::random().into_string();
    tracing::info!(call_id = %id, channel = channel.as_str(), external_id = ?start.external_id, "media stream started");
    let carrier = Carrier {
        codec: protocol.codec(),
        arrival: Arrival::InOrder,
        telephone_events: false,
        no_media: None,
    };
    let core = match calls.start_core(&id, &agent, carrier) {
        Ok(core) => core,
        Err(e) => {
            tracing::error!(error = %e, "a media stream's call cannot start");
            return close(socket, close_code::ERROR, "server error").await;
        }
    };
    let info = voxgate_domain::CallInfo {
        caller: start.caller,
        external_id: start.external_id,
        ..CallContext::inbound(id.clone().into(), channel, &agent)
    };
    calls.started(&info).await;
    if let Some(ack) = protocol.started(&id) {
        let _ = socket.send(Message::Text(ack.into())).await;
    }
    metrics()
        .call_setup
        .get_or_create(&ChannelLabel::from(channel))
        .observe(received.elapsed().as_secs_f64());
    let (log, (code, reason)) = Stream { protocol, limits, id, core, turn_marks: 0 }.run(socket).await;
    calls.ended(&info, &log).await;
    tracing::info!(code, reason, "closing a media stream");
}

/// A stream's call in progress.
struct Stream<P> {
    protocol: P,
    limits: Limits,
    id: String,
    core: CallCore,
    /// Marks sent, one at each line of the agent's.
    turn_marks: u64,
}

impl<P: Protocol> Stream<P> {
    /// Runs the call on its own 20 ms clock until it ends; closes the
    /// socket with the reason and returns the call log.
    async fn run(mut self, socket: WebSocket) -> (voxgate_pipeline::session::CallLog, (u16, &'static str)) {
        let (mut sink, mut incoming) = socket.split();
        // What we send goes through a queue, so a slow client never holds up the call's clock.
        let (out, mut queue) = mpsc::channel::<Message>(64);
        let writer = tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let mut clock = CallClock::new();
        let mut close_reason = None;
        let mut client_gone = false;
        while !self.core.is_ended() {
            tokio::select! {
                wake = clock.wait(&mut self.core) => if let Wake::Tick(now) = wake {
                    self.core.handle_tick(now);
                },
                message = incoming.next(), if !client_gone => match message {
                    Some(Ok(m)) => {
                        if let Some(reason) = self.handle(m) {
                            // Read no more: the call ends and the socket closes with this reason.
                            close_reason = Some((close_code::POLICY, reason));
                            client_gone = true;
                            self.core.hang_up(now());
                        }
                    }
                    // The client went away.
                    None | Some(Err(_)) => {
                        client_gone = true;
                        self.core.hang_up(now());
                    }
                },
            }
            if self.forward(&out) {
                break;
            }
        }
        let log = self.core.finish(now());
        let (code, reason) = close_reason.unwrap_or((close_code::NORMAL, "call ended"));
        let _ = out.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
        drop(out);
        let _ = writer.await;
        (log, (code, reason))
    }

    /// One message from the client; the reason to close, if there is one.
    fn handle(&mut self, message: Message) -> Option<&'static str> {
        let now = now();
        let mut problem = self.limits.message();
        match message {
            Message::Text(text) => match self.protocol.parse(text.as_str()) {
                Ok(Incoming::Audio(bytes)) => {
                    if !self.core.handle_audio(now, &bytes) {
                        problem = problem.or(self.limits.bad(&"audio that does not decode"));
                    }
                }
                Ok(Incoming::Dtmf(key)) => self.core.handle_control(now, Control::Dtmf(key)),
                Ok(Incoming::Stop) => self.core.hang_up(now),
                Ok(Incoming::Mark(name)) => {
                    tracing::debug!(call_id = %self.id, %name, "the client played up to a mark")
                }
                Ok(Incoming::Nothing) => {}
                Ok(Incoming::Start { .. }) => problem = problem.or(self.limits.bad(&"a second start")),
                Err(e) => problem = problem.or(self.limits.bad(&e)),
            },
            Message::Binary(_) => problem = problem.or(self.limits.bad(&"a binary message")),
            Message::Close(_) => self.core.hang_up(now),
            Message::Ping(_) | Message::Pong(_) => {}
        }
        problem
    }

    /// Carries out what the core asks, in order; true when the call is over.
    fn forward(&mut self, out: &mpsc::Sender<Message>) -> bool {
        let mut over = false;
        while let Some(output) = self.core.poll_output() {
            let text = match output {
                Output::Media(frame) => {
                    if let Some(text) = self.protocol.audio(frame.payload)
                        && out.try_send(Message::Text(text.into())).is_err()
                    {
                        // A client that does not keep up loses the frame, as a network would.
                        self.core.frame_not_sent();
                    }
                    continue;
                }
                Output::Action(Action::Clear) => Some(self.protocol.clear()),
                Output::Action(Action::Transcript { speaker, text, is_final }) => {
                    let line = self.protocol.transcript(speaker, &text, is_final);
                    if let Some(line) = line {
                        let _ = out.try_send(Message::Text(line.into()));
                    }
                    // The agent starts a line: mark the end of what came before.
                    (speaker == Speaker::Agent).then(|| {
                        self.turn_marks += 1;
                        self.protocol.mark(&format!("line-{}", self.turn_marks))
                    })
                }
                Output::Action(Action::Transfer { target }) => {
                    tracing::warn!(%target, "a media stream cannot be transferred; the call ends");
                    over = true;
                    None
                }
                Output::Action(Action::Dtmf { .. }) => {
                    tracing::warn!("a media stream cannot send keys");
                    None
                }
                Output::Action(Action::WarmTransfer { target, .. }) => {
                    tracing::warn!(%target, "a media stream cannot call a human; the caller stays with the agent");
                    let failed = TransferOutcome::Failed(TransferFailure::Failed);
                    self.core.handle_transfer(now(), failed);
                    None
                }
                Output::Action(Action::HangUp) => {
                    over = true;
                    None
                }
                // Only calls placed over SIP detect answering machines.
                Output::Action(Action::AnsweringMachine(_)) => None,
            };
            if let Some(text) = text
                && out.try_send(Message::Text(text.into())).is_err()
            {
                tracing::debug!(call_id = %self.id, "a stream message dropped: the client is not keeping up");
            }
        }
        over
    }
}
