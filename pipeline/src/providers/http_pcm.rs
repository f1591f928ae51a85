//! Shared by the HTTP speech providers: turn an error response into a typed
//! [`ProviderError`], and forward a streamed body of raw 16-bit little-endian
//! PCM as sample chunks the moment bytes arrive.

use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::{CancellationToken, ProviderError, ProviderName, TtsStream};
use voxgate_codecs::SampleRate;

/// Runs a synthesis task that fills the stream's channel; its error, if
/// any, ends the stream.
pub(crate) fn spawn_tts<F, Fut>(rate: SampleRate, run: F) -> TtsStream
where
    F: FnOnce(mpsc::Sender<Result<Vec<i16>, ProviderError>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), ProviderError>> + Send,
{
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        if let Err(e) = run(tx.clone()).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    TtsStream { rate, audio: rx }
}

/// The typed error for a non-success response, honouring `Retry-After`
/// (in seconds) on a 429.
pub(crate) async fn error_from_response(
    provider: ProviderName,
    response: reqwest::Response,
) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let message = response.text().await.unwrap_or_default();
    match ProviderError::from_status(provider, status, message) {
        ProviderError::RateLimited { provider, .. } => ProviderError::RateLimited { provider, retry_after },
        other => other,
    }
}

/// Sends `response`'s body to `tx` as samples until it ends, `cancel` fires
/// or the receiver goes away. A chunk may end in the middle of a sample: the
/// odd byte is carried over to the next.
pub(crate) async fn forward_pcm_body(
    provider: ProviderName,
    response: reqwest::Response,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Result<Vec<i16>, ProviderError>>,
) -> Result<(), ProviderError> {
    let mut body = response.bytes_stream();
    let mut carry: Option<u8> = None;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            next = body.next() => next,
        };
        let Some(bytes) = next else { return Ok(()) };
        let bytes = bytes.map_err(|e| ProviderError::Connection { provider, message: e.to_string() })?;
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
}
