//! The Deepgram speech provider against a local `/v1/speak` server that
//! speaks Deepgram's REST shapes: query parameters, `Token` auth, a JSON
//! `{text}` body, raw linear16 streamed back, JSON errors with `err_code`.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use serde_json::Value;
use voxgate_codecs::SampleRate;
use voxgate_pipeline::providers::deepgram_speech::{DeepgramSpeech, DeepgramSpeechConfig};
use voxgate_pipeline::providers::{CancellationToken, ProviderError, TextToSpeech};

mod support;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// 0.2 s of a ramp at 16 kHz.
fn ramp() -> Vec<i16> {
    (0..3200i16).map(|i| i * 8).collect()
}

fn paced(fail_after: Option<usize>) -> Body {
    let bytes: Vec<u8> = ramp().iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut parts: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(777).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    if let Some(n) = fail_after {
        parts.truncate(n);
        parts.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped")));
    }
    Body::from_stream(futures::stream::iter(parts).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        p
    }))
}

fn dg_error(status: StatusCode, code: &str) -> Response {
    let body = format!(r#"{{"err_code":"{code}","err_msg":"test","request_id":"r1"}}"#);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn speak(Query(q): Query<Vec<(String, String)>>, headers: HeaderMap, body: String) -> Response {
    if headers.get(header::AUTHORIZATION) != Some(&HeaderValue::from_static("Token dg-key")) {
        return dg_error(StatusCode::UNAUTHORIZED, "INVALID_AUTH");
    }
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get("encoding") != Some("linear16")
        || get("container") != Some("none")
        || get("sample_rate") != Some("16000")
    {
        return dg_error(StatusCode::BAD_REQUEST, "UNSUPPORTED_AUDIO_FORMAT");
    }
    let text: Value = serde_json::from_str(&body).unwrap_or_default();
    if text["text"].as_str().is_none_or(str::is_empty) {
        return dg_error(StatusCode::BAD_REQUEST, "INVALID_INPUT");
    }
    match get("model") {
        Some("busy") => {
            let mut r = dg_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
            r
        }
        Some("broken") => dg_error(StatusCode::BAD_GATEWAY, "BAD_GATEWAY"),
        Some("drop") => (StatusCode::OK, paced(Some(2))).into_response(),
        _ => (StatusCode::OK, [(header::CONTENT_TYPE, "audio/l16")], paced(None)).into_response(),
    }
}

async fn server() -> Result<String, Box<dyn std::error::Error>> {
    let app = Router::new().route("/v1/speak", post(speak));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

async fn say(url: &str, key: &str, model: &str) -> (Vec<i16>, Option<ProviderError>) {
    let tts = DeepgramSpeech::new(DeepgramSpeechConfig {
        base_url: url.into(),
        api_key: key.into(),
        model: model.into(),
        sample_rate: SampleRate::HZ_16000,
    });
    assert_eq!(tts.sample_rate(), SampleRate::HZ_16000);
    support::collect_tts(tts.synthesize("Hello there.".into(), CancellationToken::new())).await
}

#[tokio::test]
async fn streams_linear16_from_v1_speak() -> TestResult {
    let url = server().await?;
    let (audio, error) = say(&url, "dg-key", "aura-2-thalia-en").await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(audio, ramp());
    Ok(())
}

#[tokio::test]
async fn errors_are_typed_with_retry_after_and_a_drop_keeps_what_came() -> TestResult {
    let url = server().await?;
    let (_, e) = say(&url, "wrong", "aura-2-thalia-en").await;
    assert!(matches!(e, Some(ProviderError::Unauthorized { .. })), "{e:?}");
    let (_, e) = say(&url, "dg-key", "busy").await;
    assert!(
        matches!(e, Some(ProviderError::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(3)),
        "{e:?}"
    );
    let (_, e) = say(&url, "dg-key", "broken").await;
    assert!(
        matches!(&e, Some(err @ ProviderError::Server { status: 502, .. }) if err.is_retryable()),
        "{e:?}"
    );
    let (audio, e) = say(&url, "dg-key", "drop").await;
    assert!(matches!(&e, Some(err @ ProviderError::Connection { .. }) if err.is_retryable()), "{e:?}");
    assert!(!audio.is_empty() && audio.len() < 3200, "kept what arrived: {}", audio.len());
    Ok(())
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output() {
    let config = DeepgramSpeechConfig {
        base_url: "http://x".into(),
        api_key: "secret-dg-key".into(),
        model: "m".into(),
        sample_rate: SampleRate::HZ_24000,
    };
    assert!(!format!("{config:?}").contains("secret-dg-key"));
    assert!(!format!("{:?}", DeepgramSpeech::new(config)).contains("secret-dg-key"));
}
