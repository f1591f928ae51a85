//! The OpenAI-compatible speech provider against a local `/v1/audio/speech`
//! server that streams raw PCM, including errors and a dropped stream.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::Value;
use voxgate_pipeline::providers::openai_speech::{OpenAiSpeech, OpenAiSpeechConfig, PCM_RATE};
use voxgate_pipeline::providers::{CancellationToken, ProviderError, TextToSpeech};

mod support;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// 0.3 s of a ramp at 24 kHz, as little-endian bytes.
fn pcm() -> Vec<u8> {
    (0..7200i16).flat_map(|i| (i * 4).to_le_bytes()).collect()
}

/// Odd-sized chunks 10 ms apart, so samples straddle chunk boundaries.
fn paced(bytes: Vec<u8>, fail_after: Option<usize>) -> Body {
    let mut parts: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(1001).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    if let Some(n) = fail_after {
        parts.truncate(n);
        parts.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped")));
    }
    Body::from_stream(futures::stream::iter(parts).then(|p| async move {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        p
    }))
}

async fn speech(headers: HeaderMap, body: String) -> Response {
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Bearer test-key") {
        return (StatusCode::UNAUTHORIZED, r#"{"error":{"message":"bad key"}}"#).into_response();
    }
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    if request["response_format"] != "pcm" || request["input"].as_str().is_none_or(str::is_empty) {
        return (StatusCode::BAD_REQUEST, "want pcm and some input").into_response();
    }
    match request["voice"].as_str() {
        Some("busy") => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
        Some("broken") => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        Some("drop") => paced(pcm(), Some(3)).into_response(),
        _ => paced(pcm(), None).into_response(),
    }
}

async fn server() -> Result<String, Box<dyn std::error::Error>> {
    let app = Router::new().route("/v1/audio/speech", post(speech));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/v1"))
}

async fn speak(url: &str, key: &str, voice: &str) -> (Vec<i16>, Option<ProviderError>) {
    let tts = OpenAiSpeech::new(OpenAiSpeechConfig {
        base_url: url.into(),
        api_key: key.into(),
        model: "tts-1".into(),
        voice: voice.into(),
    });
    assert_eq!(tts.sample_rate(), PCM_RATE);
    support::collect_tts(tts.synthesize("Hello there.".into(), CancellationToken::new())).await
}

#[tokio::test]
async fn streams_pcm_across_odd_chunk_boundaries() -> TestResult {
    let url = server().await?;
    let (audio, error) = speak(&url, "test-key", "alloy").await;
    assert!(error.is_none(), "{error:?}");
    let expected: Vec<i16> = (0..7200i16).map(|i| i * 4).collect();
    assert_eq!(audio, expected);
    Ok(())
}

#[tokio::test]
async fn http_errors_are_typed_and_a_drop_is_retryable() -> TestResult {
    let url = server().await?;
    let (_, e) = speak(&url, "wrong", "alloy").await;
    assert!(matches!(e, Some(ProviderError::Unauthorized { .. })), "{e:?}");
    let (_, e) = speak(&url, "test-key", "busy").await;
    assert!(matches!(e, Some(ProviderError::RateLimited { .. })), "{e:?}");
    let (_, e) = speak(&url, "test-key", "broken").await;
    assert!(
        matches!(&e, Some(err @ ProviderError::Server { status: 500, .. }) if err.is_retryable()),
        "{e:?}"
    );
    let (audio, e) = speak(&url, "test-key", "drop").await;
    assert!(matches!(&e, Some(err @ ProviderError::Connection { .. }) if err.is_retryable()), "{e:?}");
    assert!(!audio.is_empty() && audio.len() < 7200, "kept what arrived: {}", audio.len());
    Ok(())
}
