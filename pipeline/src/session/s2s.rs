//! A speech-to-speech model in place of the language model and the voice
//! ([`crate::providers::SpeechToSpeech`], e.g. OpenAI Realtime): it hears
//! all of the caller's audio, and the session's own VAD, recogniser and
//! turn machine still decide the turns. A committed turn asks it to answer
//! ([`S2sInput::Respond`]) and a line of the agent's ([`S2sInput::Say`]) to
//! say it, in its voice; its audio goes through the same egress as any
//! agent turn, so barge-in, the transcript of what the caller heard, the
//! recording and the call log work as ever, and barge-in tells it how much
//! the caller heard ([`S2sInput::Interrupt`]). Its tool calls run as the
//! text model's do (HTTP tools, and the built-ins).
//!
//! When it fails, the call goes on with the agent's text model and voice
//! (the fallback line first); a new session after the provider closed one
//! answers again.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use super::reply::WorkerEvent;
use super::tools::{self, END_CALL, SEND_DTMF, TRANSFER};
use super::{AfterTurn, CallEventKind, Driver, SessionEvent, Speaker, Stage};
use crate::providers::{
    CancellationToken, ProviderError, ProviderName, S2sEvent, S2sInput, S2sSetup, SpeechToSpeech, ToolCall,
};
use crate::turn::TurnId;

/// A call's speech-to-speech session.
pub(super) struct S2s {
    name: ProviderName,
    input: mpsc::Sender<S2sInput>,
    events: mpsc::Receiver<Result<S2sEvent, ProviderError>>,
    /// The agent turn its answer (or line) is for, while it comes.
    turn: Option<TurnId>,
    /// The latest such turn, whose audio may still be playing after it came.
    last: Option<TurnId>,
    /// Its words not yet matched with their audio.
    words: String,
    /// The turn's first audio came.
    heard: bool,
    /// It failed: turns go to the text model and the voice (until a new session).
    failing: bool,
}

impl S2s {
    /// Opens `model`'s session for a call.
    pub(super) fn open(
        model: &Arc<dyn SpeechToSpeech>,
        setup: S2sSetup,
        cancel: CancellationToken,
    ) -> Result<Self, ProviderError> {
        let stream = model.open(setup, cancel)?;
        Ok(Self {
            name: model.name(),
            input: stream.input,
            events: stream.events,
            turn: None,
            last: None,
            words: String::new(),
            heard: false,
            failing: false,
        })
    }

    /// Waits for its next event (never, without a session). Cancel-safe.
    pub(super) async fn next(s2s: &mut Option<Self>) -> Option<Result<S2sEvent, ProviderError>> {
        match s2s {
            Some(s) => s.events.recv().await,
            None => std::future::pending().await,
        }
    }

    fn send(&self, input: S2sInput) {
        // A session that does not keep up loses audio, never the call.
        let _ = self.input.try_send(input);
    }
}

impl Driver {
    /// Whether turns go to the speech-to-speech model.
    pub(super) fn s2s_ready(&self) -> bool {
        self.s2s.as_ref().is_some_and(|s| !s.failing)
    }

    /// The caller's audio, for the model to hear.
    pub(super) fn s2s_audio(&self, chunk: &[i16]) {
        if let Some(s) = &self.s2s {
            s.send(S2sInput::Audio(chunk.to_vec()));
        }
    }

    /// Turn `turn` is the model's: answering the caller, or saying a line.
    pub(super) fn s2s_start(&mut self, turn: TurnId, input: S2sInput) {
        self.egress.open(turn);
        if let Some(s) = self.s2s.as_mut() {
            s.turn = Some(turn);
            s.last = Some(turn);
            s.words.clear();
            s.heard = false;
            s.send(input);
        }
    }

    /// Barge-in on turn `turn`: the caller heard `heard_ms` of it (its
    /// answer may have all come, and not all played).
    pub(super) fn s2s_interrupted(&mut self, turn: TurnId, heard_ms: u64) {
        if let Some(s) = self.s2s.as_mut().filter(|s| s.last == Some(turn)) {
            s.turn = None;
            s.last = None;
            s.words.clear();
            s.send(S2sInput::Interrupt { heard_ms });
        }
    }

    pub(super) fn handle_s2s(&mut self, event: Option<Result<S2sEvent, ProviderError>>) {
        let Some(s) = self.s2s.as_mut() else { return };
        let turn = s.turn;
        match event {
            Some(Ok(S2sEvent::Text(words))) if turn.is_some() => s.words.push_str(&words),
            Some(Ok(S2sEvent::Audio(samples))) => {
                let Some(turn) = turn else { return };
                let words = std::mem::take(&mut s.words);
                let first = !std::mem::replace(&mut s.heard, true);
                if first && let Some(p) = self.pending_latency.get_mut(&turn) {
                    p.latency.tts_first_audio_ms =
                        Some(self.now.saturating_duration_since(p.caller_stopped).as_millis() as u64);
                }
                self.s2s_words(turn, words);
                self.egress.push_audio(turn, &samples);
            }
            Some(Ok(S2sEvent::ToolCall(call))) if turn.is_some() => self.s2s_tool(call),
            Some(Ok(S2sEvent::Done)) => {
                s.failing = false;
                let Some(turn) = s.turn.take() else { return };
                let words = std::mem::take(&mut s.words);
                self.s2s_words(turn, words);
                self.s2s_close(turn);
                self.failures = 0;
            }
            Some(Ok(S2sEvent::CallerText(text))) => tracing::debug!(%text, "the model heard the caller"),
            Some(Ok(S2sEvent::Reconnected { attempt })) => {
                s.failing = false;
                let provider = s.name.to_owned();
                self.log(CallEventKind::ProviderRetry {
                    stage: Stage::Llm,
                    provider,
                    attempt,
                    backoff_ms: 0,
                    error: "the provider closed the session; a new one goes on".to_owned(),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let (name, first) = (s.name, !std::mem::replace(&mut s.failing, true));
                if let Some(turn) = s.turn.take() {
                    self.s2s_close(turn);
                }
                if first {
                    self.failed(Stage::Llm, name, e.to_string(), true);
                } else {
                    // One failure of an answer may be reported twice (an error, then its end).
                    tracing::debug!(error = %e, "speech-to-speech: failing still");
                }
            }
            None => {
                // The session is over for good: the text model and the voice take over.
                let name = s.name;
                self.s2s = None;
                self.log(CallEventKind::ProviderFailed {
                    stage: Stage::Llm,
                    provider: name.to_owned(),
                    error: "the session closed".to_owned(),
                });
            }
        }
    }

    /// Words of the model's answer: the audio that follows says them.
    fn s2s_words(&mut self, turn: TurnId, words: String) {
        if !words.trim().is_empty() {
            self.transcript_event(Speaker::Agent, words.clone(), true);
            self.egress.begin_sentence(turn, words);
        }
    }

    fn s2s_close(&mut self, turn: TurnId) {
        self.egress.close(turn);
        self.egress.settle();
        self.drain_egress_events();
    }

    /// The model calls a tool: the built-ins act on the call (and the model
    /// says no more); an agent's tool runs, and its result goes back.
    fn s2s_tool(&mut self, call: ToolCall) {
        let Some(s) = self.s2s.as_ref() else { return };
        let Some(turn) = s.turn else { return };
        let input = s.input.clone();
        let done = |input: &mpsc::Sender<S2sInput>, output: String, respond: bool| {
            let _ = input.try_send(S2sInput::ToolResult { call_id: call.id.clone(), output, respond });
        };
        match call.name.as_str() {
            END_CALL if self.config().end_call_tool => {
                self.after_turn = Some((turn, AfterTurn::EndCall));
                done(&input, json!({"ok": true}).to_string(), false);
            }
            TRANSFER if self.config().transfer_target.is_some() => {
                let target = self.config().transfer_target.clone().unwrap_or_default();
                self.log(CallEventKind::Transfer { target: target.clone() });
                let summary = tools::transfer_summary(&call);
                self.after_turn = Some((turn, AfterTurn::Transfer(target, summary)));
                done(&input, json!({"ok": true}).to_string(), false);
            }
            SEND_DTMF if self.config().dtmf_tool => {
                let output = match tools::dtmf_digits(&call) {
                    Ok(digits) => {
                        self.log(CallEventKind::DtmfSent { digits: digits.clone() });
                        self.events.push_back(SessionEvent::Dtmf { digits });
                        json!({"ok": true})
                    }
                    Err(problem) => json!({"error": problem}),
                };
                done(&input, output.to_string(), true);
            }
            _ => {
                let (ctx, log) = (self.ctx.clone(), self.worker_tx.clone());
                tokio::spawn(async move {
                    let result = match ctx.tool(&call.name) {
                        Some(tool) => tool.run(&call).await,
                        None => tools::ToolResult {
                            content: json!({"error": format!("no tool named {}", call.name)}).to_string(),
                            ok: false,
                            elapsed: std::time::Duration::ZERO,
                        },
                    };
                    let ran = WorkerEvent::ToolRan {
                        name: call.name.clone(),
                        ok: result.ok,
                        elapsed: result.elapsed,
                    };
                    let _ = log.send(ran).await;
                    let _ = input
                        .send(S2sInput::ToolResult {
                            call_id: call.id,
                            output: result.content,
                            respond: true,
                        })
                        .await;
                });
            }
        }
    }
}
