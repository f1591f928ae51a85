//! Text to speech through an OpenAI-compatible `POST /v1/audio/speech` with
//! `response_format: "pcm"`: raw 24 kHz 16-bit little-endian mono, streamed,
//! so the first audio plays while the rest is still being made.

use serde_json::json;
use tokio::sync::mpsc;
use voxgate_codecs::SampleRate;

use super::http_pcm::{error_from_response, forward_pcm_body, spawn_tts};
use super::{CancellationToken, ProviderError, ProviderName, TextToSpeech, TtsStream};

const NAME: ProviderName = "openai-speech";

/// OpenAI's PCM output rate.
pub const PCM_RATE: SampleRate = SampleRate::HZ_24000;

/// Where the endpoint is and which voice to use.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiSpeechConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    /// API key; empty for servers that need none.
    pub api_key: String,
    /// e.g. `gpt-4o-mini-tts` or `tts-1`.
    pub model: String,
    /// e.g. `alloy`.
    pub voice: String,
}

impl std::fmt::Debug for OpenAiSpeechConfig {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSpeechConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("voice", &self.voice)
            .finish_non_exhaustive()
    }
}

/// The speech provider.
#[derive(Debug, Clone)]
pub struct OpenAiSpeech {
    http: reqwest::Client,
    config: OpenAiSpeechConfig,
}

impl OpenAiSpeech {
    /// A client for `config`.
    #[must_use]
    pub fn new(config: OpenAiSpeechConfig) -> Self {
        Self { http: reqwest::Client::new(), config }
    }

    async fn run(
        &self,
        text: &str,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<Vec<i16>, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let c = &self.config;
        let url = format!("{}/audio/speech", c.base_url.trim_end_matches('/'));
        let body = json!({"model": c.model, "voice": c.voice, "input": text, "response_format": "pcm"});
        let mut request = self.http.post(url).json(&body);
        if !c.api_key.is_empty() {
            request = request.bearer_auth(&c.api_key);
        }
        let connection =
            |e: reqwest::Error| ProviderError::Connection { provider: NAME, message: e.to_string() };
        let response = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            r = request.send() => r.map_err(connection)?,
        };
        if !response.status().is_success() {
            return Err(error_from_response(NAME, response).await);
        }
        forward_pcm_body(NAME, response, cancel, tx).await
    }
}

impl TextToSpeech for OpenAiSpeech {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn sample_rate(&self) -> SampleRate {
        PCM_RATE
    }

    fn synthesize(&self, text: String, cancel: CancellationToken) -> TtsStream {
        let this = self.clone();
        spawn_tts(PCM_RATE, move |tx| async move { this.run(&text, &cancel, &tx).await })
    }
}
