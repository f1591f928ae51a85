//! Whisper as a [`SpeechToText`] provider.
//!
//! Whisper transcribes whole utterances, so the stream keeps the caller's
//! frames since the last end of speech and transcribes them when the
//! endpointer says the caller stopped ([`SttInput::EndOfSpeech`]).
//!
//! That costs most of a second after the turn ends, so it also starts early,
//! at a pause ([`SttInput::Pause`]): if the turn ends at that pause, the
//! transcript is ready sooner; if the caller goes on ([`SttInput::Resume`]),
//! the early one is thrown away and the whole utterance is read at its end.
//! Early work starts only when no transcription is running, so with many
//! calls it never delays a transcript that is needed.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::LocalModelError;
use super::whisper::WhisperStt;
use crate::providers::{
    CancellationToken, ProviderError, ProviderName, SpeechToText, SttEvent, SttInput, SttStream,
};

const NAME: ProviderName = "local-stt";

/// The longest utterance kept: two minutes at 16 kHz.
const MAX_SAMPLES: usize = 120 * 16_000;
/// Audio kept from before a speech start: the endpointer's minimum speech
/// plus its padding, with room to spare.
const ONSET_SAMPLES: usize = 16_000 / 2;

/// Whisper tiny.en, shared by every call; each agent's copy may carry its
/// vocabulary prompt.
#[derive(Debug, Clone)]
pub struct LocalStt {
    model: Arc<WhisperStt>,
    prompt: Arc<[String]>,
}

impl LocalStt {
    /// Wraps a loaded model.
    #[must_use]
    pub fn new(model: WhisperStt) -> Self {
        Self { model: Arc::new(model), prompt: Arc::new([]) }
    }

    /// The same model, biased toward `vocabulary` (an agent's names and terms).
    ///
    /// # Errors
    /// The tokenizer failing.
    pub fn with_vocabulary(
        &self,
        vocabulary: &[String],
    ) -> Result<Self, crate::providers::local::LocalModelError> {
        Ok(Self { model: self.model.clone(), prompt: self.model.prompt(vocabulary)?.into() })
    }
}

/// A transcription started at a pause, before the turn was known to be over.
struct Early {
    task: JoinHandle<Result<String, LocalModelError>>,
    /// The caller went on after the pause: it misses words.
    stale: bool,
}

impl LocalStt {
    fn transcribe(&self, audio: Vec<i16>) -> JoinHandle<Result<String, LocalModelError>> {
        let (model, prompt) = (self.model.clone(), self.prompt.clone());
        tokio::task::spawn_blocking(move || model.transcribe_prompted(&audio, &prompt))
    }
}

impl SpeechToText for LocalStt {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn open(&self, cancel: CancellationToken) -> Result<SttStream, ProviderError> {
        let (input_tx, mut input) = mpsc::channel::<SttInput>(256);
        let (events_tx, events) = mpsc::channel(16);
        let stt = self.clone();
        tokio::spawn(async move {
            let mut utterance: Vec<i16> = Vec::with_capacity(16_000 * 10);
            let mut early: Option<Early> = None;
            loop {
                let next = tokio::select! {
                    () = cancel.cancelled() => break,
                    next = input.recv() => next,
                };
                match next {
                    Some(SttInput::Audio(frame)) => {
                        // A rolling window: long silences do not fill it up.
                        let over = (utterance.len() + frame.len()).saturating_sub(MAX_SAMPLES);
                        utterance.drain(..over.min(utterance.len()));
                        utterance.extend_from_slice(&frame);
                    }
                    Some(SttInput::StartOfSpeech) => {
                        // Whisper does best on the speech alone: keep only
                        // the onset and padding the endpointer already saw.
                        let keep = utterance.len().min(ONSET_SAMPLES);
                        utterance.drain(..utterance.len() - keep);
                        // A new utterance: nothing started earlier belongs to it.
                        early = None;
                    }
                    Some(SttInput::Pause) => {
                        // Only on idle cores: work that may be thrown away
                        // must not delay another call's transcript (or this
                        // call's, with a stale one still running).
                        if !stt.model.is_busy() && !utterance.is_empty() {
                            early = Some(Early { task: stt.transcribe(utterance.clone()), stale: false });
                        }
                    }
                    Some(SttInput::Resume) => {
                        if let Some(e) = early.as_mut() {
                            e.stale = true;
                        }
                    }
                    Some(SttInput::EndOfSpeech) if utterance.is_empty() => {}
                    Some(SttInput::EndOfSpeech) => {
                        let audio = std::mem::take(&mut utterance);
                        // The endpointer heard no voice since the pause: the
                        // early transcript holds every word.
                        let task = match early.take() {
                            Some(Early { task, stale: false }) => task,
                            _ => stt.transcribe(audio),
                        };
                        let event = match task.await {
                            Ok(Ok(text)) => Ok(SttEvent::Final { text, speech_final: true }),
                            Ok(Err(source)) => Err(ProviderError::Local { provider: NAME, source }),
                            Err(join) => {
                                Err(ProviderError::Protocol { provider: NAME, message: join.to_string() })
                            }
                        };
                        if events_tx.send(event).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
        });
        Ok(SttStream { input: input_tx, events })
    }
}
