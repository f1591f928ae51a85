//! The local voice as a [`TextToSpeech`] provider: Piper, or espeak-ng's
//! own voice when the Piper model cannot be loaded.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use voxgate_codecs::SampleRate;

use super::espeak;
use super::piper::{PiperConfig, PiperVoice};
use crate::providers::{CancellationToken, ProviderError, ProviderName, TextToSpeech, TtsStream};

const NAME: ProviderName = "local-tts";

/// Piper, or espeak-ng as a fallback. Both speak at 22050 Hz.
#[derive(Debug, Clone)]
pub struct LocalTts {
    /// One loaded voice, shared by every call; synthesis runs one sentence at a time.
    piper: Option<Arc<Mutex<PiperVoice>>>,
    espeak_voice: String,
}

impl LocalTts {
    /// Loads Piper from `config`; if that fails, uses espeak-ng's `en-us` voice.
    /// Returns the provider and, if Piper failed, why.
    #[must_use]
    pub fn load(config: &PiperConfig) -> (Self, Option<super::LocalModelError>) {
        match PiperVoice::load(config) {
            Ok(voice) => {
                (Self { piper: Some(Arc::new(Mutex::new(voice))), espeak_voice: "en-us".into() }, None)
            }
            Err(e) => (Self::espeak_only("en-us"), Some(e)),
        }
    }

    /// espeak-ng's own voice only.
    #[must_use]
    pub fn espeak_only(voice: &str) -> Self {
        Self { piper: None, espeak_voice: voice.to_owned() }
    }

    /// Whether the neural voice is in use.
    #[must_use]
    pub fn is_piper(&self) -> bool {
        self.piper.is_some()
    }

    /// Speaks `text`, sentence by sentence, sending each as soon as it is made.
    fn run(
        &self,
        text: &str,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<Vec<i16>, ProviderError>>,
    ) {
        let local = |source| ProviderError::Local { provider: NAME, source };
        let Some(piper) = &self.piper else {
            let audio = espeak::synthesize(text, &self.espeak_voice).map_err(local);
            let _ = tx.blocking_send(audio);
            return;
        };
        let mut voice = piper.lock().unwrap_or_else(PoisonError::into_inner);
        let sentences = match voice.phonemize(text) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.blocking_send(Err(local(e)));
                return;
            }
        };
        for sentence in sentences {
            if cancel.is_cancelled() {
                return;
            }
            let audio = voice.synthesize_phonemes(&sentence).map_err(local);
            let failed = audio.is_err();
            if tx.blocking_send(audio).is_err() || failed {
                return; // receiver gone (barge-in) or a failure reported
            }
        }
    }
}

impl TextToSpeech for LocalTts {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn sample_rate(&self) -> SampleRate {
        SampleRate(22_050)
    }

    fn synthesize(&self, text: String, cancel: CancellationToken) -> TtsStream {
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        // Synthesis is CPU-bound: a blocking thread, not the async workers.
        tokio::task::spawn_blocking(move || this.run(&text, &cancel, &tx));
        TtsStream { rate: self.sample_rate(), audio: rx }
    }
}
