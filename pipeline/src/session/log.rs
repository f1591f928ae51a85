//! What a call leaves behind: its transcript, its events, and each turn's
//! latency breakdown. Serialisable for the call log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::turn::HangupReason;

pub use voxgate_domain::Speaker;

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// The exchange it belongs to.
    pub turn: u64,
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said; for the agent, only what the caller heard.
    pub text: String,
    /// When it started, in ms since the call started.
    pub at_ms: u64,
    /// The agent was cut short by the caller.
    pub interrupted: bool,
}

/// The stage of a turn a provider serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Speech to text.
    Stt,
    /// The language model.
    Llm,
    /// Text to speech.
    Tts,
    /// An HTTP tool.
    Tool,
}

/// Something that happened in the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallEventKind {
    /// The caller's turn was committed.
    TurnCommitted { turn: u64, dtmf: bool },
    /// The caller interrupted the agent.
    Interrupted { turn: u64, heard_ms: u64 },
    /// The agent paused for a sound that was not an interruption, then went on.
    FalseInterruption { turn: u64 },
    /// A provider failed and is tried again after `backoff_ms`.
    ProviderRetry { stage: Stage, provider: String, attempt: u32, backoff_ms: u64, error: String },
    /// A provider failed for good in a turn.
    ProviderFailed { stage: Stage, provider: String, error: String },
    /// The agent said its fallback line.
    Fallback,
    /// A tool ran.
    ToolCalled { name: String, ok: bool, ms: u64 },
    /// The agent asked to transfer the caller.
    Transfer { target: String },
    /// A warm transfer's human heard the announcement; the caller was joined to them.
    TransferConnected { target: String },
    /// A warm transfer did not reach the human; the caller is back with the agent.
    TransferFailed { target: String, reason: super::TransferFailure },
    /// The agent handed a text conversation to the human desk.
    Escalated { reason: String },
    /// The agent pressed keys on the keypad.
    DtmfSent { digits: String },
    /// The recording stopped early.
    RecordingFailed { error: String },
    /// The learned end of turn judged a pause of the caller's: complete
    /// (the turn ends now) or not (the endpointer waits longer).
    TurnCheck { complete: bool, probability: f32 },
    /// The model's answer to a fact question ignored or contradicted the
    /// retrieved facts; the agent read the best passage instead.
    GroundingFallback { turn: u64 },
    /// Who answered a call we placed, and why we think so.
    AnsweringMachine(crate::dsp::amd::Detection),
    /// The agent began its message on an answering machine.
    MessageLeft { cue: crate::dsp::amd::MessageCue },
}

/// An event with its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    /// Ms since the call started.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: CallEventKind,
}

/// Where one reply's time went, in ms after the caller stopped speaking.
/// A stage that did not happen (an interrupted turn) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnLatency {
    /// The turn.
    pub turn: u64,
    /// The final transcript arrived.
    pub final_transcript_ms: Option<u64>,
    /// The turn was committed (endpointing done).
    pub committed_ms: Option<u64>,
    /// The LLM's first token.
    pub llm_first_token_ms: Option<u64>,
    /// TTS's first audio.
    pub tts_first_audio_ms: Option<u64>,
    /// The first frame of the reply went out.
    pub first_frame_ms: Option<u64>,
}

/// Why the call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EndReason {
    /// The caller hung up (or the transport went away).
    CallerHungUp,
    /// No audio came from the caller for too long.
    NoMedia,
    /// The caller was silent too long.
    MaxSilence,
    /// The call reached its maximum length.
    MaxDuration,
    /// The agent ended the call (its end-call tool).
    AgentEnded,
    /// Providers kept failing.
    ProviderFailure,
    /// The caller was handed to a human.
    Transferred { target: String },
    /// An answering machine picked up, and the agent hung up on it.
    AnsweringMachine,
    /// An answering machine picked up, and the agent left its message.
    MessageLeft,
    /// The server stopped during the call (a crash, `kill -9`); set when it
    /// starts again and finds the call's record still open.
    Interrupted,
}

impl EndReason {
    pub(crate) fn from_hangup(reason: HangupReason, failed: bool) -> Self {
        match reason {
            HangupReason::MaxSilence => Self::MaxSilence,
            HangupReason::MaxDuration => Self::MaxDuration,
            HangupReason::AgentEnded if failed => Self::ProviderFailure,
            HangupReason::AgentEnded => Self::AgentEnded,
            HangupReason::MessageLeft => Self::MessageLeft,
        }
    }
}

/// Everything a finished call leaves, for the call log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallLog {
    /// What was said, in order.
    pub transcript: Vec<TranscriptLine>,
    /// What happened, in order.
    pub events: Vec<CallEvent>,
    /// One entry per answered caller turn.
    pub latencies: Vec<TurnLatency>,
    /// Why it ended.
    pub end: EndReason,
    /// How long it lasted.
    pub duration_ms: u64,
    /// Ms of caller audio recorded (0 without a recording).
    pub recorded_ms: u64,
    /// Agent frames the transport could not take in time.
    pub dropped_frames: u64,
    /// What the providers were asked to do, for billing.
    #[serde(default)]
    pub usage: Usage,
}

/// What a call asked of its providers: the units vendors bill by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Caller audio streamed to the recogniser, in ms.
    pub stt_audio_ms: u64,
    /// Tokens the language model read, over every request.
    pub llm_prompt_tokens: u64,
    /// Tokens the language model wrote.
    pub llm_completion_tokens: u64,
    /// Some token counts were estimated from text length (the provider
    /// reported none, e.g. a stream cut short by barge-in).
    pub llm_tokens_estimated: bool,
    /// Characters sent to text to speech, retries included.
    pub tts_characters: u64,
}

impl std::ops::Add for Usage {
    type Output = Self;

    /// Both together: a conversation resumed message by message adds each answer's.
    fn add(self, more: Self) -> Self {
        Self {
            stt_audio_ms: self.stt_audio_ms + more.stt_audio_ms,
            llm_prompt_tokens: self.llm_prompt_tokens + more.llm_prompt_tokens,
            llm_completion_tokens: self.llm_completion_tokens + more.llm_completion_tokens,
            llm_tokens_estimated: self.llm_tokens_estimated || more.llm_tokens_estimated,
            tts_characters: self.tts_characters + more.tts_characters,
        }
    }
}

/// Counts a call's [`Usage`] as its tasks run (shared, lock-free).
#[derive(Debug, Default)]
pub(crate) struct UsageMeter {
    stt_audio_ms: AtomicU64,
    llm_prompt_tokens: AtomicU64,
    llm_completion_tokens: AtomicU64,
    llm_tokens_estimated: AtomicBool,
    tts_characters: AtomicU64,
}

impl UsageMeter {
    pub(crate) fn add_stt_ms(&self, ms: u64) {
        self.stt_audio_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub(crate) fn add_llm(&self, prompt: u64, completion: u64, estimated: bool) {
        self.llm_prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
        self.llm_completion_tokens.fetch_add(completion, Ordering::Relaxed);
        if estimated {
            self.llm_tokens_estimated.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_tts(&self, text: &str) {
        self.tts_characters.fetch_add(text.chars().count() as u64, Ordering::Relaxed);
    }

    pub(crate) fn total(&self) -> Usage {
        Usage {
            stt_audio_ms: self.stt_audio_ms.load(Ordering::Relaxed),
            llm_prompt_tokens: self.llm_prompt_tokens.load(Ordering::Relaxed),
            llm_completion_tokens: self.llm_completion_tokens.load(Ordering::Relaxed),
            llm_tokens_estimated: self.llm_tokens_estimated.load(Ordering::Relaxed),
            tts_characters: self.tts_characters.load(Ordering::Relaxed),
        }
    }
}

impl CallLog {
    /// The transcript as plain lines, `caller: ...` / `agent: ...`.
    #[must_use]
    pub fn transcript_text(&self) -> String {
        self.transcript
            .iter()
            .map(|l| {
                let who = l.speaker.as_str();
                format!("{who}: {}{}\n", l.text, if l.interrupted { " [interrupted]" } else { "" })
            })
            .collect()
    }
}
