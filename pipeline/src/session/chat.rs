//! A text conversation with the same agent as a call: its prompt, its
//! knowledge and its tools, the reply streamed token by token. It leaves a
//! [`CallLog`] like a call (without audio). Two ways to hold one:
//! - [`spawn_chat`]: one task per conversation, driven by the visitor's
//!   messages (the web chat, open while its websocket is);
//! - [`Thread`]: resumed from its log for each message and left as a log
//!   again, so nothing stays in memory between messages (WhatsApp, where a
//!   conversation lasts hours and a person of the team may take it over).
//!
//! ```text
//! messages in ──► history + knowledge ──► LLM (tool rounds) ──► deltas out, then the whole reply
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{Providers, SessionConfig};
use super::log::{CallEvent, CallEventKind, CallLog, EndReason, Speaker, TranscriptLine, TurnLatency, Usage};
use super::reply::{self, Words, WorkerContext, WorkerEvent};
use crate::providers::{CancellationToken, ChatMessage, Role};
use crate::turn::TurnId;

/// What the conversation tells its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// More of the agent's reply.
    Delta(String),
    /// The agent's whole reply (the greeting too).
    Message(String),
    /// The conversation is over.
    Ended(EndReason),
}

/// A running conversation.
#[derive(Debug)]
pub struct ChatHandle {
    /// The visitor's messages; dropping it ends the conversation.
    pub messages: mpsc::Sender<String>,
    pub events: mpsc::Receiver<ChatEvent>,
    /// Ends with the conversation's log.
    pub task: tokio::task::JoinHandle<CallLog>,
}

/// Starts a conversation with the agent `config` and `providers` describe.
/// It greets (if the agent has a greeting), then answers each message;
/// it ends when the visitor leaves, says nothing for the agent's silence
/// limit, or the agent ends it (its `end_call` tool).
#[must_use]
pub fn spawn_chat(config: SessionConfig, providers: Providers) -> ChatHandle {
    let (messages_tx, messages_rx) = mpsc::channel(16);
    let (events_tx, events_rx) = mpsc::channel(256);
    let task = tokio::spawn(run(config, providers, messages_rx, events_tx));
    ChatHandle { messages: messages_tx, events: events_rx, task }
}

struct Chat {
    ctx: Arc<WorkerContext>,
    history: Vec<ChatMessage>,
    transcript: Vec<TranscriptLine>,
    log: Vec<CallEvent>,
    latencies: Vec<TurnLatency>,
    started: Instant,
    events: mpsc::Sender<ChatEvent>,
    next_turn: u64,
    /// Why the agent handed the conversation to the human desk, if it did.
    escalated: Option<String>,
}

impl Chat {
    fn new(config: SessionConfig, providers: Providers, events: mpsc::Sender<ChatEvent>) -> Self {
        Self {
            history: vec![ChatMessage::new(Role::System, config.system_prompt.clone())],
            ctx: Arc::new(WorkerContext { config: Arc::new(config), providers, usage: Arc::default() }),
            transcript: Vec::new(),
            log: Vec::new(),
            latencies: Vec::new(),
            started: Instant::now(),
            events,
            next_turn: 1,
            escalated: None,
        }
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn line(&mut self, turn: u64, speaker: Speaker, text: &str) {
        let at_ms = self.ms();
        self.transcript.push(TranscriptLine {
            turn,
            speaker,
            text: text.to_owned(),
            at_ms,
            interrupted: false,
        });
    }

    /// Keeps what the worker reported of a turn asked at `asked`: whether
    /// the agent ended the conversation.
    fn absorb(&mut self, reports: Vec<WorkerEvent>, asked: Instant, latency: &mut TurnLatency) -> bool {
        let mut ended = false;
        for report in reports {
            match report {
                WorkerEvent::FirstToken { at, .. } => {
                    latency.llm_first_token_ms = Some(at.saturating_duration_since(asked).as_millis() as u64);
                }
                WorkerEvent::ToolMessages { messages, .. } => self.history.extend(messages),
                WorkerEvent::Retrieved { passages, .. } => {
                    if let Some(question) = self.history.iter_mut().rev().find(|m| m.role == Role::User) {
                        question.knowledge = passages;
                    }
                }
                WorkerEvent::ToolRan { name, ok, elapsed } => {
                    let ms = elapsed.as_millis() as u64;
                    self.log.push(CallEvent {
                        at_ms: self.ms(),
                        kind: CallEventKind::ToolCalled { name, ok, ms },
                    });
                }
                WorkerEvent::EndCall { .. } => ended = true,
                WorkerEvent::Escalate { reason } => {
                    let kind = CallEventKind::Escalated { reason: reason.clone() };
                    self.log.push(CallEvent { at_ms: self.ms(), kind });
                    self.escalated = Some(reason);
                }
                WorkerEvent::Transfer { target, .. } => {
                    // No one to hand a chat to yet: the agent's words stand.
                    self.log.push(CallEvent { at_ms: self.ms(), kind: CallEventKind::Transfer { target } });
                }
                WorkerEvent::Retrying { stage, provider, attempt, backoff, error } => {
                    let kind = CallEventKind::ProviderRetry {
                        stage,
                        provider: provider.to_owned(),
                        attempt,
                        backoff_ms: backoff.as_millis() as u64,
                        error,
                    };
                    self.log.push(CallEvent { at_ms: self.ms(), kind });
                }
                _ => {}
            }
        }
        ended
    }

    /// Answers the visitor's `text`; true when the agent ended the conversation.
    async fn answer(&mut self, text: String) -> bool {
        self.next_turn += 1;
        let turn = TurnId(self.next_turn);
        let asked = Instant::now();
        self.line(turn.0, Speaker::Caller, &text);
        self.history.push(ChatMessage::new(Role::User, text.clone()));
        self.log.push(CallEvent {
            at_ms: self.ms(),
            kind: CallEventKind::TurnCommitted { turn: turn.0, dtmf: false },
        });

        let (words_tx, mut words_rx) = mpsc::unbounded_channel::<String>();
        let (worker_tx, mut worker_rx) = mpsc::channel::<WorkerEvent>(64);
        let cancel = CancellationToken::new();
        let (ctx, history) = (self.ctx.clone(), self.history.clone());
        let think = async move {
            let mut words = Words::deltas(&words_tx);
            reply::converse(&ctx, turn, history, text, &mut words, &cancel, &worker_tx).await
        };
        // Pass the words on as they come; keep what the worker reports.
        let events = self.events.clone();
        let relay = async move {
            let mut reply = String::new();
            while let Some(delta) = words_rx.recv().await {
                reply.push_str(&delta);
                let _ = events.send(ChatEvent::Delta(delta)).await;
            }
            reply
        };
        let collect = async move {
            let mut reports = Vec::new();
            while let Some(e) = worker_rx.recv().await {
                reports.push(e);
            }
            reports
        };
        let (result, mut reply, reports) = tokio::join!(think, relay, collect);
        let mut latency = TurnLatency { turn: turn.0, committed_ms: Some(0), ..TurnLatency::default() };
        let ended = self.absorb(reports, asked, &mut latency);
        if let Err((stage, error, _)) = result {
            let kind = CallEventKind::ProviderFailed {
                stage,
                provider: error.provider().to_owned(),
                error: error.to_string(),
            };
            self.log.push(CallEvent { at_ms: self.ms(), kind });
            self.log.push(CallEvent { at_ms: self.ms(), kind: CallEventKind::Fallback });
            let fallback = self.ctx.config.fallback_line.clone();
            if !reply.is_empty() {
                reply.push(' ');
            }
            reply.push_str(&fallback);
            let _ = self.events.send(ChatEvent::Delta(fallback)).await;
        }
        self.latencies.push(latency);
        let reply = reply.trim().to_owned();
        if !reply.is_empty() {
            self.line(turn.0, Speaker::Agent, &reply);
            self.history.push(ChatMessage::new(Role::Assistant, reply.clone()));
        }
        let _ = self.events.send(ChatEvent::Message(reply)).await;
        ended
    }
}

async fn run(
    config: SessionConfig,
    providers: Providers,
    mut messages: mpsc::Receiver<String>,
    events: mpsc::Sender<ChatEvent>,
) -> CallLog {
    let idle = config.turn.hangup_after_silence_ms.map(|ms| Duration::from_millis(u64::from(ms)));
    let greeting = config.turn.greeting.clone();
    let max = config.turn.max_call_duration_ms.map(Duration::from_millis);
    let mut chat = Chat::new(config, providers, events);
    if let Some(greeting) = greeting {
        chat.line(1, Speaker::Agent, &greeting);
        chat.history.push(ChatMessage::new(Role::Assistant, greeting.clone()));
        let _ = chat.events.send(ChatEvent::Message(greeting)).await;
    }
    let end = loop {
        let waiting = async {
            match idle {
                Some(d) => tokio::time::timeout(d, messages.recv()).await.map_err(|_| EndReason::MaxSilence),
                None => Ok(messages.recv().await),
            }
        };
        let next = match max {
            Some(max) => {
                let left = max.saturating_sub(chat.started.elapsed());
                tokio::time::timeout(left, waiting).await.unwrap_or(Err(EndReason::MaxDuration))
            }
            None => waiting.await,
        };
        match next {
            Err(reason) => break reason,
            Ok(None) => break EndReason::CallerHungUp,
            Ok(Some(text)) => {
                if chat.answer(text).await {
                    break EndReason::AgentEnded;
                }
            }
        }
    };
    let _ = chat.events.send(ChatEvent::Ended(end.clone())).await;
    chat.call_log(end, Usage::default())
}

impl Chat {
    fn call_log(&self, end: EndReason, earlier: Usage) -> CallLog {
        CallLog {
            transcript: self.transcript.clone(),
            events: self.log.clone(),
            latencies: self.latencies.clone(),
            end,
            duration_ms: self.ms(),
            recorded_ms: 0,
            dropped_frames: 0,
            usage: earlier + self.ctx.usage.total(),
        }
    }
}

/// A conversation held as its log between messages: resumed for each one.
pub struct Thread {
    chat: Chat,
    /// Deltas nobody streams: read and dropped while an answer is written.
    events: mpsc::Receiver<ChatEvent>,
    /// What the providers did before this resumption.
    earlier: Usage,
}

/// What one message got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadAnswer {
    /// The agent's whole reply (it may be empty, e.g. a bare tool call).
    pub reply: String,
    /// The agent ended the conversation (`end_call`).
    pub ended: bool,
    /// The agent handed it to the human desk (`escalate_to_human`), for this reason.
    pub escalated: Option<String>,
}

impl Thread {
    /// The conversation `log` left, `age` after it began, with the agent
    /// `config` and `providers` describe. The model reads it again from the
    /// transcript (a colleague's lines as the agent's, marked as theirs).
    #[must_use]
    pub fn resume(config: SessionConfig, providers: Providers, log: CallLog, age: Duration) -> Self {
        let (tx, events) = mpsc::channel(64);
        let mut chat = Chat::new(config, providers, tx);
        chat.started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        for line in &log.transcript {
            chat.history.push(remembered(line));
            chat.next_turn = chat.next_turn.max(line.turn);
        }
        chat.transcript = log.transcript;
        chat.log = log.events;
        chat.latencies = log.latencies;
        Self { chat, events, earlier: log.usage }
    }

    /// Answers the contact's `text`.
    pub async fn answer(&mut self, text: String) -> ThreadAnswer {
        self.chat.escalated = None;
        let ended = {
            let answering = self.chat.answer(text);
            tokio::pin!(answering);
            loop {
                tokio::select! {
                    ended = &mut answering => break ended,
                    Some(_) = self.events.recv() => {}
                }
            }
        };
        let reply = match self.chat.transcript.last() {
            Some(line) if line.speaker == Speaker::Agent && line.turn == self.chat.next_turn => {
                line.text.clone()
            }
            _ => String::new(),
        };
        ThreadAnswer { reply, ended, escalated: self.chat.escalated.take() }
    }

    /// Keeps a line nobody answers: the contact's message while a person has
    /// the conversation, or that person's reply.
    pub fn note(&mut self, speaker: Speaker, text: &str) {
        if speaker == Speaker::Caller {
            self.chat.next_turn += 1;
        }
        self.chat.line(self.chat.next_turn, speaker, text);
        if let Some(line) = self.chat.transcript.last() {
            let message = remembered(line);
            self.chat.history.push(message);
        }
    }

    /// The log so far, as if it ended now for `end`.
    #[must_use]
    pub fn log(&self, end: EndReason) -> CallLog {
        self.chat.call_log(end, self.earlier)
    }
}

impl std::fmt::Debug for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thread").field("lines", &self.chat.transcript.len()).finish_non_exhaustive()
    }
}

/// A transcript line as the model reads it again.
fn remembered(line: &TranscriptLine) -> ChatMessage {
    match line.speaker {
        Speaker::Caller => ChatMessage::new(Role::User, line.text.clone()),
        Speaker::Agent => ChatMessage::new(Role::Assistant, line.text.clone()),
        Speaker::Staff => ChatMessage::new(Role::Assistant, format!("(a colleague wrote) {}", line.text)),
    }
}
