//! Scripted providers: deterministic stand-ins with configurable latency,
//! for the session harness, the benchmarks and the load generator, which
//! measure Voxgate itself rather than a model. They follow the provider
//! contracts exactly (streams, cancellation, errors), so the session cannot
//! tell them from real ones.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use voxgate_codecs::SampleRate;

use super::{
    CancellationToken, ChatRequest, LanguageModel, LlmEvent, ProviderError, ProviderName, SpeechToText,
    SttEvent, SttInput, SttStream, TextToSpeech, ToolCall, TtsStream,
};

/// Waits `d`; no wait at all for zero (a zero sleep still costs a timer
/// tick of up to a millisecond, which would be charged to the session).
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn pop<T>(queue: &Mutex<VecDeque<T>>) -> Option<T> {
    queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front()
}

/// What the scripted recogniser says at the next end of speech.
#[derive(Debug)]
pub enum SttScript {
    /// A final transcript.
    Text(String),
    /// The stream fails with this error (and closes).
    Fail(ProviderError),
}

/// Speech to text that answers each end of speech with the next scripted
/// transcript (or `default_text` once the script is used up).
#[derive(Debug, Default)]
pub struct ScriptedStt {
    script: Arc<Mutex<VecDeque<SttScript>>>,
    open_failures: Mutex<VecDeque<ProviderError>>,
    opened: std::sync::atomic::AtomicUsize,
    /// Said when the script is used up.
    pub default_text: String,
    /// Time from end of speech to the final transcript.
    pub latency: Duration,
}

impl ScriptedStt {
    /// A recogniser that will say `script` in order.
    #[must_use]
    pub fn new(script: Vec<SttScript>) -> Self {
        Self { script: Arc::new(Mutex::new(script.into())), ..Self::default() }
    }

    /// After the first `open`, the next ones fail with these errors, in order.
    #[must_use]
    pub fn failing_reopens(self, errors: Vec<ProviderError>) -> Self {
        Self { open_failures: Mutex::new(errors.into()), ..self }
    }
}

impl SpeechToText for ScriptedStt {
    fn name(&self) -> ProviderName {
        "scripted-stt"
    }

    fn open(&self, cancel: CancellationToken) -> Result<SttStream, ProviderError> {
        let opened = self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if opened > 0
            && let Some(error) = pop(&self.open_failures)
        {
            return Err(error);
        }
        let (input_tx, mut input) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(16);
        // The script is shared by every stream of this provider.
        let script = self.script.clone();
        let (latency, default_text) = (self.latency, self.default_text.clone());
        tokio::spawn(async move {
            let mut heard = false;
            loop {
                let next = tokio::select! {
                    () = cancel.cancelled() => return,
                    next = input.recv() => next,
                };
                match next {
                    None => return,
                    Some(SttInput::Audio(_) | SttInput::Pause | SttInput::Resume) => {}
                    Some(SttInput::StartOfSpeech) => heard = true,
                    Some(SttInput::EndOfSpeech) if !heard => {}
                    Some(SttInput::EndOfSpeech) => {
                        heard = false;
                        pause(latency).await;
                        let event = match pop(&script) {
                            Some(SttScript::Text(text)) => Ok(SttEvent::Final { text, speech_final: true }),
                            Some(SttScript::Fail(error)) => Err(error),
                            None => Ok(SttEvent::Final { text: default_text.clone(), speech_final: true }),
                        };
                        let fail = event.is_err();
                        if events_tx.send(event).await.is_err() || fail {
                            return;
                        }
                    }
                }
            }
        });
        Ok(SttStream { input: input_tx, events })
    }
}

/// What the scripted model answers next.
#[derive(Debug)]
pub enum LlmScript {
    /// Stream `text` word by word, then ask for `tool_calls`.
    Reply { text: String, tool_calls: Vec<ToolCall> },
    /// Fail with this error before any output.
    Fail(ProviderError),
}

impl LlmScript {
    /// A plain text reply.
    #[must_use]
    pub fn text(text: &str) -> Self {
        Self::Reply { text: text.to_owned(), tool_calls: Vec::new() }
    }
}

/// A language model that streams scripted replies word by word and keeps
/// the last [`ScriptedLlm::KEPT_REQUESTS`] requests it was sent.
#[derive(Debug)]
pub struct ScriptedLlm {
    script: Arc<Mutex<VecDeque<LlmScript>>>,
    requests: Arc<Mutex<Vec<ChatRequest>>>,
    /// Said when the script is used up.
    pub default_reply: String,
    /// Time to the first token.
    pub first_token: Duration,
    /// Time between tokens (words).
    pub per_token: Duration,
}

impl ScriptedLlm {
    /// Requests kept for [`ScriptedLlm::requests`] (a server running on it for
    /// a load test must not grow without bound).
    pub const KEPT_REQUESTS: usize = 64;

    /// A model that will answer with `script` in order.
    #[must_use]
    pub fn new(script: Vec<LlmScript>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into())),
            requests: Arc::default(),
            default_reply: "I see.".to_owned(),
            first_token: Duration::ZERO,
            per_token: Duration::ZERO,
        }
    }

    /// The last requests, oldest first.
    #[must_use]
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl LanguageModel for ScriptedLlm {
    fn name(&self) -> ProviderName {
        "scripted-llm"
    }

    fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<Result<LlmEvent, ProviderError>> {
        {
            let mut kept = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.len() == Self::KEPT_REQUESTS {
                kept.remove(0);
            }
            kept.push(request);
        }
        let (tx, rx) = mpsc::channel(64);
        let next = pop(&self.script).unwrap_or_else(|| LlmScript::text(&self.default_reply));
        let (first, per) = (self.first_token, self.per_token);
        tokio::spawn(async move {
            let work = async {
                let (text, calls) = match next {
                    LlmScript::Fail(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                    LlmScript::Reply { text, tool_calls } => (text, tool_calls),
                };
                pause(first).await;
                for (i, word) in text.split_inclusive(' ').enumerate() {
                    if i > 0 {
                        pause(per).await;
                    }
                    if tx.send(Ok(LlmEvent::Delta(word.to_owned()))).await.is_err() {
                        return;
                    }
                }
                for call in calls {
                    let _ = tx.send(Ok(LlmEvent::ToolCall(call))).await;
                }
                let _ = tx.send(Ok(LlmEvent::Done)).await;
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        });
        rx
    }
}

/// Text to speech that "speaks" a 440 Hz tone, `per_word` long for each
/// word, in 100 ms chunks at 16 kHz.
#[derive(Debug)]
pub struct ScriptedTts {
    failures: Arc<Mutex<VecDeque<ProviderError>>>,
    requests: std::sync::atomic::AtomicUsize,
    /// Time to the first audio.
    pub first_audio: Duration,
    /// Audio per word.
    pub per_word: Duration,
}

impl Default for ScriptedTts {
    fn default() -> Self {
        Self {
            failures: Arc::default(),
            requests: std::sync::atomic::AtomicUsize::new(0),
            first_audio: Duration::ZERO,
            per_word: Duration::from_millis(300),
        }
    }
}

impl ScriptedTts {
    /// The next requests fail with these errors, in order.
    #[must_use]
    pub fn failing(self, errors: Vec<ProviderError>) -> Self {
        Self {
            failures: Arc::new(Mutex::new(errors.into())),
            requests: std::sync::atomic::AtomicUsize::new(0),
            ..self
        }
    }

    /// How many texts it was asked to speak.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The samples `text` becomes (so tests can predict lengths).
    #[must_use]
    pub fn samples_for(&self, text: &str) -> usize {
        let words = text.split_whitespace().count() as u128;
        (words * self.per_word.as_millis() * 16) as usize
    }
}

/// One period of the scripted voice, a 440 Hz tone at 16 kHz (440/16000 =
/// 11/400: it repeats every 400 samples), computed once: under load tests
/// a sine per sample was a visible share of the server's profile.
fn tone() -> &'static [i16; 400] {
    static TONE: std::sync::OnceLock<[i16; 400]> = std::sync::OnceLock::new();
    TONE.get_or_init(|| {
        std::array::from_fn(|i| {
            let phase = i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0;
            (phase.sin() * 3000.0) as i16
        })
    })
}

impl TextToSpeech for ScriptedTts {
    fn name(&self) -> ProviderName {
        "scripted-tts"
    }

    fn sample_rate(&self) -> SampleRate {
        SampleRate::HZ_16000
    }

    fn synthesize(&self, text: String, cancel: CancellationToken) -> TtsStream {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(16);
        let failure = pop(&self.failures);
        let total = self.samples_for(&text);
        let first = self.first_audio;
        tokio::spawn(async move {
            if let Some(error) = failure {
                let _ = tx.send(Err(error)).await;
                return;
            }
            let work = async {
                pause(first).await;
                let mut made = 0;
                while made < total {
                    let n = (total - made).min(1600);
                    let tone = tone();
                    let chunk: Vec<i16> = (made..made + n).map(|i| tone[i % tone.len()]).collect();
                    made += n;
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        });
        TtsStream { rate: SampleRate::HZ_16000, audio: rx }
    }
}
