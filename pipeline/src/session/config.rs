//! What one call's session needs to know: the agent's behaviour and its
//! providers.

use std::sync::Arc;
use std::time::Duration;

use super::tools::Tool;
use crate::dsp::endpoint::EndpointConfig;
pub use crate::dsp::smart_turn::TurnDetector;
pub use crate::knowledge::Knowledge;
use crate::providers::{LanguageModel, SpeechToSpeech, SpeechToText, TextToSpeech};
use crate::turn::TurnConfig;

/// The agent's behaviour in a call.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Turn-taking: greeting, barge-in, endpointing delays, reprompts, limits.
    pub turn: TurnConfig,
    /// How the caller's speech start and end are found.
    pub endpoint: EndpointConfig,
    /// Take the agent's own voice out of the caller's audio before it is
    /// heard ([`crate::dsp::echo`]): a handset's echo then does not stop
    /// the agent, while the caller's real barge-in still does. Off by
    /// default for now: over the greeting, before the call's echo is
    /// measured, it clipped the first words of a caller quieter than the
    /// agent (the Twilio barge-in test heard "Keep it on Saturday").
    pub echo_cancellation: bool,
    /// Turn the caller's background noise down before voice activity
    /// detection ([`crate::dsp::denoise`], RNNoise), so a noisy line does
    /// not hold the agent paused; the recogniser, the turn model and the
    /// recording get the caller's audio as it came.
    pub noise_suppression: bool,
    /// The learned end of turn the endpointer asks at each pause (with
    /// `endpoint.turn_check_ms`); `None`: silence alone ends a turn.
    pub turn_detector: Option<Arc<dyn TurnDetector>>,
    /// The agent's instructions.
    pub system_prompt: String,
    /// Longest reply per LLM round, in tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Knowledge passages put into the prompt per caller turn.
    pub knowledge_passages: usize,
    /// Tools the agent may call (HTTP tools).
    pub tools: Vec<Arc<dyn Tool>>,
    /// Offer the built-in `end_call` tool.
    pub end_call_tool: bool,
    /// Where `transfer_to_human` sends the caller; `None`: no such tool.
    pub transfer_target: Option<String>,
    /// How: handed over at once (blind), or announced to the human first (warm).
    pub transfer_mode: TransferMode,
    /// What the human hears before a warm transfer joins them to the
    /// caller; `{summary}` is replaced by the model's summary of the call.
    pub transfer_announcement: String,
    /// Said to the caller when a warm transfer did not reach the human.
    pub transfer_failed_line: String,
    /// Offer the built-in `send_dtmf` tool (press keys, e.g. in a phone menu).
    pub dtmf_tool: bool,
    /// Offer the built-in `escalate_to_human` tool: a text conversation
    /// with a human desk behind it (WhatsApp) is handed to the team.
    pub escalate_tool: bool,
    /// Tool rounds (LLM -> tools -> LLM) in one reply.
    pub max_tool_rounds: u32,
    /// The conversation sent to the model, in tokens (roughly): the oldest
    /// turns are left out past it ([`super::history`]); 0: no bound.
    pub max_history_tokens: usize,
    /// Said when a tool has run this long, once per reply.
    pub filler: Option<(Duration, String)>,
    /// Waits between tries of a failing provider; its length is the number of retries.
    pub retry_backoff: Vec<Duration>,
    /// Said when a provider failed for good in a turn.
    pub fallback_line: String,
    /// Who answered a call we placed: a person gets the greeting, a
    /// machine a hang-up or a message ([`super::answering`]). `None`: the
    /// agent greets at once (every call we take).
    pub answering_machine: Option<super::AnsweringMachine>,
    /// Failures in a row after which the call ends ...
    pub max_consecutive_failures: u32,
    /// ... with these last words.
    pub failure_goodbye: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            turn: TurnConfig::default(),
            endpoint: EndpointConfig::default(),
            echo_cancellation: false,
            noise_suppression: false,
            turn_detector: None,
            system_prompt: "You are a helpful, friendly voice assistant. Answer briefly, in one or two \
                            spoken sentences, without lists or markup."
                .to_owned(),
            max_tokens: 120,
            temperature: 0.0,
            knowledge_passages: 2,
            tools: Vec::new(),
            end_call_tool: true,
            transfer_target: None,
            transfer_mode: TransferMode::Blind,
            transfer_announcement: "Hello, this is the virtual assistant, with a caller for you. {summary} \
                                    I'm connecting you now."
                .to_owned(),
            transfer_failed_line: "I'm sorry, nobody could take your call just now. Is there anything \
                                   else I can help you with?"
                .to_owned(),
            dtmf_tool: false,
            escalate_tool: false,
            max_tool_rounds: 3,
            max_history_tokens: 4000,
            filler: Some((Duration::from_millis(1500), "One moment, please.".to_owned())),
            retry_backoff: vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)],
            fallback_line: "Sorry, I didn't catch that, could you say it again?".to_owned(),
            answering_machine: None,
            max_consecutive_failures: 2,
            failure_goodbye: "I'm sorry, I'm having technical trouble. Please call again later. Goodbye."
                .to_owned(),
        }
    }
}

/// How `transfer_to_human` hands the caller over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransferMode {
    /// At once: the transport hands the caller to the target (SIP REFER)
    /// and the agent is gone.
    #[default]
    Blind,
    /// The caller waits on hold while the agent calls the human, tells them
    /// what the call is about, and joins the two; if nobody takes it, the
    /// caller is back with the agent ([`super::transfer`]).
    Warm,
}

/// The providers a call uses; shared by all calls of an agent.
#[derive(Clone)]
pub struct Providers {
    /// Speech to text.
    pub stt: Arc<dyn SpeechToText>,
    /// The language model.
    pub llm: Arc<dyn LanguageModel>,
    /// Text to speech.
    pub tts: Arc<dyn TextToSpeech>,
    /// The agent's knowledge, if it has any.
    pub knowledge: Option<Arc<dyn Knowledge>>,
    /// A model that hears the caller and answers in speech, in place of
    /// `llm` and `tts` ([`super::s2s`]); they answer while it fails.
    pub speech_to_speech: Option<Arc<dyn SpeechToSpeech>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("stt", &self.stt.name())
            .field("llm", &self.llm.name())
            .field("tts", &self.tts.name())
            .field("knowledge", &self.knowledge.is_some())
            .field("speech_to_speech", &self.speech_to_speech.as_ref().map(|s| s.name()))
            .finish()
    }
}
