//! Deepgram live speech to text over its websocket (`/v1/listen`) through the
//! `deepgram` SDK: 16 kHz linear16 audio in; interim and final results,
//! speech-final, SpeechStarted and UtteranceEnd events out. KeepAlive while
//! the caller is silent, Finalize at the endpointer's end of speech,
//! CloseStream at the end. The key goes in the `Authorization: Token` header
//! and is never logged.

use deepgram::common::options::{Encoding, Endpointing, Model, Options};
use deepgram::common::stream_response::StreamResponse;
use deepgram::{Deepgram, DeepgramError};
use tokio::sync::mpsc;

use super::{CancellationToken, ProviderError, ProviderName, SpeechToText, SttEvent, SttInput, SttStream};

const NAME: ProviderName = "deepgram";

/// Where Deepgram is and how it listens.
#[derive(Clone, PartialEq, Eq)]
pub struct DeepgramConfig {
    /// `https://api.deepgram.com` (the SDK adds `/v1/listen`).
    pub base_url: String,
    /// API key.
    pub api_key: String,
    /// e.g. `nova-3`.
    pub model: String,
    /// BCP 47, e.g. `en` or `de`; empty: Deepgram's default.
    pub language: String,
    /// Silence (ms) after which Deepgram marks a result speech-final.
    pub endpointing_ms: u32,
    /// Silence (ms) after which Deepgram sends UtteranceEnd.
    pub utterance_end_ms: u16,
    /// Names and terms callers will say (the agent's): `keyterm` on Nova-3,
    /// `keywords` on older models.
    pub vocabulary: Vec<String>,
}

impl std::fmt::Debug for DeepgramConfig {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepgramConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// The Deepgram provider.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    config: DeepgramConfig,
}

impl DeepgramStt {
    /// A provider for `config`.
    #[must_use]
    pub fn new(config: DeepgramConfig) -> Self {
        Self { config }
    }
}

/// Maps the SDK's errors, reading the HTTP status of a refused handshake.
fn map_error(e: DeepgramError) -> ProviderError {
    if let DeepgramError::WsError(ws) = &e
        && let tungstenite::Error::Http(response) = ws.as_ref()
    {
        let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
        return ProviderError::from_status(NAME, response.status().as_u16(), body);
    }
    ProviderError::Connection { provider: NAME, message: e.to_string() }
}

fn event(response: StreamResponse) -> Option<SttEvent> {
    match response {
        StreamResponse::TranscriptResponse { is_final, speech_final, channel, .. } => {
            let text = channel.alternatives.into_iter().next().map(|a| a.transcript).unwrap_or_default();
            Some(if is_final { SttEvent::Final { text, speech_final } } else { SttEvent::Interim { text } })
        }
        StreamResponse::SpeechStartedResponse { .. } => Some(SttEvent::SpeechStarted),
        StreamResponse::UtteranceEndResponse { .. } => Some(SttEvent::UtteranceEnd),
        _ => None,
    }
}

async fn run(
    config: DeepgramConfig,
    cancel: CancellationToken,
    mut input: mpsc::Receiver<SttInput>,
    events: &mpsc::Sender<Result<SttEvent, ProviderError>>,
) -> Result<(), ProviderError> {
    let client = Deepgram::with_base_url_and_api_key(config.base_url.as_str(), &config.api_key)
        .map_err(|e| ProviderError::Protocol { provider: NAME, message: e.to_string() })?;
    let mut options = Options::builder().model(Model::from(config.model.clone())).smart_format(true);
    if !config.language.is_empty() {
        options = options.language(deepgram::common::options::Language::from(config.language.clone()));
    }
    if !config.vocabulary.is_empty() {
        let terms = config.vocabulary.iter().map(String::as_str);
        options = if config.model.starts_with("nova-3") {
            options.keyterms(terms)
        } else {
            options.keywords(terms)
        };
    }
    let options = options.build();
    let mut handle = client
        .transcription()
        .stream_request_with_options(options)
        .encoding(Encoding::Linear16)
        .sample_rate(16_000)
        .channels(1)
        .interim_results(true)
        .vad_events(true)
        .utterance_end_ms(config.utterance_end_ms)
        .endpointing(Endpointing::CustomDurationMs(config.endpointing_ms))
        .keep_alive()
        .handle()
        .await
        .map_err(map_error)?;
    let mut closing = false;
    loop {
        tokio::select! {
            () = cancel.cancelled(), if !closing => {
                let _ = handle.close_stream().await;
                return Ok(());
            }
            next = input.recv(), if !closing => match next {
                Some(SttInput::Audio(frame)) => {
                    let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
                    handle.send_data(bytes).await.map_err(map_error)?;
                }
                Some(SttInput::EndOfSpeech) => handle.finalize().await.map_err(map_error)?,
                // Deepgram finds speech itself, and streams its transcript.
                Some(SttInput::StartOfSpeech | SttInput::Pause | SttInput::Resume) => {}
                None => {
                    // The call is over: ask for the last results, then stop.
                    handle.close_stream().await.map_err(map_error)?;
                    closing = true;
                }
            },
            response = handle.receive() => match response {
                Some(Ok(response)) => {
                    if let Some(e) = event(response)
                        && events.send(Ok(e)).await.is_err()
                    {
                        return Ok(()); // nobody listens any more
                    }
                }
                Some(Err(e)) => return Err(map_error(e)),
                None if closing => return Ok(()),
                None => {
                    return Err(ProviderError::Connection { provider: NAME, message: "websocket closed".into() });
                }
            },
        }
    }
}

impl SpeechToText for DeepgramStt {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn open(&self, cancel: CancellationToken) -> Result<SttStream, ProviderError> {
        let (input_tx, input) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(64);
        let config = self.config.clone();
        tokio::spawn(async move {
            if let Err(e) = run(config, cancel, input, &events_tx).await {
                let _ = events_tx.send(Err(e)).await;
            }
        });
        Ok(SttStream { input: input_tx, events })
    }
}
