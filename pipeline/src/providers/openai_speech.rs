//! Text to speech through an OpenAI-compatible `POST /v1/audio/speech` with
//! `response_format: "pcm"`: raw 24 kHz 16-bit little-endian mono, streamed,
//! so the first audio plays while the rest is still being made.

use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::mpsc;
use voxgate_codecs::SampleRate;

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
        let status = response.status();
        if !status.is_success() {
            let message = response.text().await.unwrap_or_default();
            return Err(ProviderError::from_status(NAME, status.as_u16(), message));
        }
        let mut body = response.bytes_stream();
        // A chunk may end in the middle of a sample: carry the odd byte over.
        let mut carry: Option<u8> = None;
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                next = body.next() => next,
            };
            let Some(bytes) = next else { break };
            let bytes = bytes.map_err(connection)?;
            let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
            let mut rest: &[u8] = &bytes;
            if let (Some(lo), Some((&hi, tail))) = (carry, rest.split_first()) {
                samples.push(i16::from_le_bytes([lo, hi]));
                carry = None;
                rest = tail;
            }
            let pairs = rest.chunks_exact(2);
            carry = carry.or(pairs.remainder().first().copied());
            samples.extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
            if !samples.is_empty() && tx.send(Ok(samples)).await.is_err() {
                return Ok(()); // nobody listens any more
            }
        }
        Ok(())
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
        let (tx, rx) = mpsc::channel(32);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run(&text, &cancel, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        TtsStream { rate: PCM_RATE, audio: rx }
    }
}
