//! Deepgram text to speech (Aura) through its REST endpoint `POST /v1/speak`
//! with `encoding=linear16&container=none`: raw PCM at the rate asked for,
//! streamed as it is made. The session sends one sentence or clause per
//! request, so the REST form gives first audio as early as the websocket
//! form would, without a connection to keep alive per call. The key goes in
//! the `Authorization: Token` header and is never logged.

use serde_json::json;
use tokio::sync::mpsc;
use voxgate_codecs::SampleRate;

use super::http_pcm::{error_from_response, forward_pcm_body, spawn_tts};
use super::{CancellationToken, ProviderError, ProviderName, TextToSpeech, TtsStream};

const NAME: ProviderName = "deepgram-speech";

/// Where Deepgram is and which voice to use.
#[derive(Clone, PartialEq, Eq)]
pub struct DeepgramSpeechConfig {
    /// `https://api.deepgram.com` (the client adds `/v1/speak`).
    pub base_url: String,
    /// API key.
    pub api_key: String,
    /// The voice model, e.g. `aura-2-thalia-en`.
    pub model: String,
    /// Output rate: 8000, 16000, 24000 or 48000.
    pub sample_rate: SampleRate,
}

impl std::fmt::Debug for DeepgramSpeechConfig {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepgramSpeechConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("sample_rate", &self.sample_rate)
            .finish_non_exhaustive()
    }
}

/// The Deepgram speech provider.
#[derive(Debug, Clone)]
pub struct DeepgramSpeech {
    http: reqwest::Client,
    config: DeepgramSpeechConfig,
}

impl DeepgramSpeech {
    /// A client for `config`.
    #[must_use]
    pub fn new(config: DeepgramSpeechConfig) -> Self {
        Self { http: reqwest::Client::new(), config }
    }

    async fn run(
        &self,
        text: &str,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<Vec<i16>, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let c = &self.config;
        let url = format!("{}/v1/speak", c.base_url.trim_end_matches('/'));
        let rate = c.sample_rate.0.to_string();
        let query = [
            ("model", c.model.as_str()),
            ("encoding", "linear16"),
            ("container", "none"),
            ("sample_rate", rate.as_str()),
        ];
        let request = self
            .http
            .post(url)
            .query(&query)
            .header(reqwest::header::AUTHORIZATION, format!("Token {}", c.api_key))
            .json(&json!({ "text": text }));
        let response = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            r = request.send() => r.map_err(|e| ProviderError::Connection { provider: NAME, message: e.to_string() })?,
        };
        if !response.status().is_success() {
            return Err(error_from_response(NAME, response).await);
        }
        forward_pcm_body(NAME, response, cancel, tx).await
    }
}

impl TextToSpeech for DeepgramSpeech {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn sample_rate(&self) -> SampleRate {
        self.config.sample_rate
    }

    fn synthesize(&self, text: String, cancel: CancellationToken) -> TtsStream {
        let this = self.clone();
        spawn_tts(self.config.sample_rate, move |tx| async move { this.run(&text, &cancel, &tx).await })
    }
}
