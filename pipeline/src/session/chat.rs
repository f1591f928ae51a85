//! A text conversation with the same agent as a call: its prompt, its
//! knowledge and its tools, the reply streamed token by token. One task
//! per conversation, driven by the visitor's messages; it leaves a
//! [`CallLog`] like a call (without audio).
//!
//! ```text
//! messages in ──► history + knowledge ──► LLM (tool rounds) ──► deltas out, then the whole reply
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{Providers, SessionConfig};
use super::log::{CallEvent, CallEventKind, CallLog, EndReason, Speaker, TranscriptLine, TurnLatency};
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
}

impl Chat {
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
        let mut ended = false;
        let mut latency = TurnLatency { turn: turn.0, committed_ms: Some(0), ..TurnLatency::default() };
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
    let mut chat = Chat {
        history: vec![ChatMessage::new(Role::System, config.system_prompt.clone())],
        ctx: Arc::new(WorkerContext { config: Arc::new(config), providers, usage: Arc::default() }),
        transcript: Vec::new(),
        log: Vec::new(),
        latencies: Vec::new(),
        started: Instant::now(),
        events,
        next_turn: 1,
    };
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
    CallLog {
        transcript: chat.transcript,
        events: chat.log,
        latencies: chat.latencies,
        end,
        duration_ms: chat.started.elapsed().as_millis() as u64,
        recorded_ms: 0,
        dropped_frames: 0,
        usage: chat.ctx.usage.total(),
    }
}
