//! Whisper as a [`SpeechToText`] provider.
//!
//! Whisper transcribes whole utterances, so the stream keeps the caller's
//! frames since the last end of speech and transcribes them when the
//! endpointer says the caller stopped ([`SttInput::EndOfSpeech`]).

use std::sync::Arc;

use tokio::sync::mpsc;

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

impl SpeechToText for LocalStt {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn open(&self, cancel: CancellationToken) -> Result<SttStream, ProviderError> {
        let (input_tx, mut input) = mpsc::channel::<SttInput>(256);
        let (events_tx, events) = mpsc::channel(16);
        let (model, prompt) = (self.model.clone(), self.prompt.clone());
        tokio::spawn(async move {
            let mut utterance: Vec<i16> = Vec::with_capacity(16_000 * 10);
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
                    }
                    Some(SttInput::EndOfSpeech) if utterance.is_empty() => {}
                    Some(SttInput::EndOfSpeech) => {
                        let audio = std::mem::take(&mut utterance);
                        let (model, prompt) = (model.clone(), prompt.clone());
                        let result =
                            tokio::task::spawn_blocking(move || model.transcribe_prompted(&audio, &prompt))
                                .await;
                        let event = match result {
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
