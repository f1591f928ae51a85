//! Speech to text, language models and text to speech: one trait per
//! capability, local implementations that run offline ([`local`]), cloud
//! ones that speak the vendors' protocols.
//!
//! Every trait is streaming first and object-safe: a call opens a stream and
//! gets channels back; the provider's own task fills them. Work stops when
//! the turn's [`CancellationToken`] is cancelled (barge-in) or the receiver
//! is dropped.

#[cfg(feature = "cloud")]
pub mod deepgram;
#[cfg(feature = "cloud")]
pub mod deepgram_speech;
#[cfg(feature = "cloud")]
mod http_pcm;
pub mod local;
#[cfg(feature = "cloud")]
pub mod openai;
#[cfg(feature = "cloud")]
pub mod openai_realtime;
#[cfg(feature = "cloud")]
pub mod openai_speech;
pub mod recording;
pub mod scripted;

use std::time::Duration;

use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;
use voxgate_codecs::SampleRate;

/// Which provider failed, for errors and the call log.
pub type ProviderName = &'static str;

/// A provider failed. Says whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The credentials were refused (HTTP 401/403). Not retryable.
    #[error("{provider}: unauthorized (check the API key)")]
    Unauthorized { provider: ProviderName },
    /// Too many requests (HTTP 429). Retryable, after `retry_after` if given.
    #[error("{provider}: rate limited")]
    RateLimited { provider: ProviderName, retry_after: Option<Duration> },
    /// The service failed (HTTP 5xx). Retryable.
    #[error("{provider}: server error {status}")]
    Server { provider: ProviderName, status: u16 },
    /// The request was refused as malformed (other HTTP 4xx). Not retryable.
    #[error("{provider}: request refused with {status}: {message}")]
    Rejected { provider: ProviderName, status: u16, message: String },
    /// The connection failed or dropped mid-stream. Retryable.
    #[error("{provider}: connection: {message}")]
    Connection { provider: ProviderName, message: String },
    /// The peer sent something this client does not understand. Not retryable.
    #[error("{provider}: protocol: {message}")]
    Protocol { provider: ProviderName, message: String },
    /// A local model failed. Not retryable.
    #[error("{provider}: {source}")]
    Local {
        provider: ProviderName,
        #[source]
        source: local::LocalModelError,
    },
}

impl ProviderError {
    /// Whether the same request may succeed if tried again.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Server { .. } | Self::Connection { .. })
    }

    /// The error for an HTTP error status: 401/403 unauthorized, 429 rate
    /// limited, 5xx server error, any other refused as malformed.
    #[must_use]
    pub fn from_status(provider: ProviderName, status: u16, message: String) -> Self {
        match status {
            401 | 403 => Self::Unauthorized { provider },
            429 => Self::RateLimited { provider, retry_after: None },
            500..=599 => Self::Server { provider, status },
            _ => Self::Rejected { provider, status, message },
        }
    }

    /// The provider that failed.
    #[must_use]
    pub fn provider(&self) -> ProviderName {
        match self {
            Self::Unauthorized { provider }
            | Self::RateLimited { provider, .. }
            | Self::Server { provider, .. }
            | Self::Rejected { provider, .. }
            | Self::Connection { provider, .. }
            | Self::Protocol { provider, .. }
            | Self::Local { provider, .. } => provider,
        }
    }
}

/// Audio and control into a speech-to-text stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SttInput {
    /// The caller's audio at 16 kHz, in chunks of 20 to 100 ms.
    Audio(Vec<i16>),
    /// The endpointer heard the caller start (its padding is in the frames
    /// already sent). Streaming recognisers may ignore it.
    StartOfSpeech,
    /// The endpointer heard the caller stop: finish what was said.
    EndOfSpeech,
    /// The caller has paused and may be done: a recogniser of whole
    /// utterances may start on what it has, to have the transcript ready if
    /// `EndOfSpeech` follows. Streaming recognisers ignore it.
    Pause,
    /// The caller's voice came back after a `Pause`: work started on it is stale.
    Resume,
}

/// What a speech-to-text stream reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SttEvent {
    /// A transcript that may still change.
    Interim { text: String },
    /// A transcript that will not change. `speech_final`: the recogniser
    /// also thinks the caller finished speaking.
    Final { text: String, speech_final: bool },
    /// The recogniser heard speech begin.
    SpeechStarted,
    /// The recogniser heard the utterance end (after silence).
    UtteranceEnd,
}

/// An open speech-to-text stream: send frames, receive events.
#[derive(Debug)]
pub struct SttStream {
    /// Caller audio in. Dropping it closes the stream.
    pub input: mpsc::Sender<SttInput>,
    /// Transcripts out; ends when the stream closes.
    pub events: mpsc::Receiver<Result<SttEvent, ProviderError>>,
}

/// Speech to text.
pub trait SpeechToText: Send + Sync {
    /// A short name for logs and the call log.
    fn name(&self) -> ProviderName;

    /// Opens a stream for one call. Runs on the current tokio runtime.
    ///
    /// # Errors
    /// The provider cannot start (e.g. a missing model). Connection failures
    /// of cloud providers arrive on the stream instead.
    fn open(&self, cancel: CancellationToken) -> Result<SttStream, ProviderError>;
}

/// Audio from a text-to-speech request, in chunks as it is made.
#[derive(Debug)]
pub struct TtsStream {
    /// The rate of every chunk.
    pub rate: SampleRate,
    /// Mono 16-bit chunks of any length; ends when the text is spoken.
    pub audio: mpsc::Receiver<Result<Vec<i16>, ProviderError>>,
}

/// Text to speech.
pub trait TextToSpeech: Send + Sync {
    /// A short name for logs and the call log.
    fn name(&self) -> ProviderName;

    /// The rate of the audio this voice produces.
    fn sample_rate(&self) -> SampleRate;

    /// Speaks `text` (a sentence or clause). Stops when `cancel` is cancelled.
    fn synthesize(&self, text: String, cancel: CancellationToken) -> TtsStream;
}

/// Into a speech-to-speech session ([`SpeechToSpeech`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S2sInput {
    /// The caller's audio at 16 kHz, as it comes (the model hears it all).
    Audio(Vec<i16>),
    /// The caller's turn is over: answer what they said (`said`: their
    /// words as the call's recogniser heard them, kept for a new session).
    Respond { said: String },
    /// The caller's turn was not speech (keys on the keypad): answer this
    /// text, written as the caller's.
    Typed(String),
    /// Say this line, in the model's voice (a greeting, a goodbye).
    Say(String),
    /// Barge-in: stop answering; the caller heard the first `heard_ms` of
    /// the answer, and the model's conversation keeps only that.
    Interrupt { heard_ms: u64 },
    /// The result of the model's tool call `call_id`. `respond`: the model
    /// goes on with it (not after a tool that ended its answer: hanging up,
    /// a transfer).
    ToolResult { call_id: String, output: String, respond: bool },
}

/// What a speech-to-speech session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S2sEvent {
    /// The model's voice, at 16 kHz.
    Audio(Vec<i16>),
    /// Words of what it is saying, as they come (before or with their audio).
    Text(String),
    /// It calls a tool; answer with [`S2sInput::ToolResult`].
    ToolCall(ToolCall),
    /// The answer (or line) is complete.
    Done,
    /// What the caller said, as the model heard it.
    CallerText(String),
    /// The provider closed the session; a new one goes on with the
    /// conversation so far (an answer under way when it closed is lost).
    Reconnected { attempt: u32 },
}

/// What a speech-to-speech model is told as a call starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S2sSetup {
    /// The agent's instructions.
    pub instructions: String,
    /// The tools it may call.
    pub tools: Vec<ToolSpec>,
}

/// An open speech-to-speech session: send audio and turns, receive speech.
#[derive(Debug)]
pub struct S2sStream {
    /// Dropping it closes the session.
    pub input: mpsc::Sender<S2sInput>,
    /// Ends when the session closes for good.
    pub events: mpsc::Receiver<Result<S2sEvent, ProviderError>>,
}

/// A model that hears the caller and answers in speech: it replaces the
/// language model and the voice of a call. Turns are the session's: its
/// VAD and turn machine say when to answer ([`S2sInput::Respond`]) and
/// when the caller barged in ([`S2sInput::Interrupt`]).
pub trait SpeechToSpeech: Send + Sync {
    /// A short name for logs and the call log.
    fn name(&self) -> ProviderName;

    /// Opens a session for one call. Runs on the current tokio runtime.
    ///
    /// # Errors
    /// The provider cannot start; connection failures arrive on the stream.
    fn open(&self, setup: S2sSetup, cancel: CancellationToken) -> Result<S2sStream, ProviderError>;
}

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions and knowledge.
    System,
    /// The caller.
    User,
    /// The agent.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The name chat templates and APIs use.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id, echoed with the result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Arguments as a JSON object, as text.
    pub arguments: String,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said (for the agent: only what the caller heard).
    pub content: String,
    /// Tool calls the agent made in this message.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the call it answers.
    pub tool_call_id: Option<String>,
    /// For a caller's message: the knowledge passages retrieved for it,
    /// kept in the history so a provider can show every turn as it was
    /// asked (a prompt that only grows stays cached). The last message's
    /// are also [`ChatRequest::knowledge`]; providers may ignore these.
    pub knowledge: Vec<String>,
}

impl ChatMessage {
    /// A plain message.
    #[must_use]
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            knowledge: Vec::new(),
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    /// Name the model uses.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments, as text.
    pub parameters: String,
}

/// A request for the agent's next message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Passages of the agent's knowledge retrieved for the last user
    /// message; each provider puts them where its model heeds them best.
    pub knowledge: Vec<String>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Longest reply, in tokens.
    pub max_tokens: u32,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// Ask for a JSON reply that fits this schema (providers that support
    /// structured output enforce it; the rest only read it in the prompt).
    pub response_schema: Option<ResponseSchema>,
}

/// A JSON schema the reply must fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSchema {
    /// A short name for it, e.g. `call_analytics`.
    pub name: String,
    /// The schema, as JSON text.
    pub schema: String,
}

/// What a language model streams back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmEvent {
    /// More text of the reply.
    Delta(String),
    /// The model wants a tool run.
    ToolCall(ToolCall),
    /// The tokens the request used, as the provider counted them (before `Done`).
    Usage { prompt_tokens: u32, completion_tokens: u32 },
    /// The reply is complete.
    Done,
}

/// A chat model.
pub trait LanguageModel: Send + Sync {
    /// A short name for logs and the call log.
    fn name(&self) -> ProviderName;

    /// Streams the reply to `request` until done or `cancel` is cancelled.
    fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<Result<LlmEvent, ProviderError>>;
}
