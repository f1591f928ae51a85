//! The Deepgram provider against a local server that speaks Deepgram's live
//! transcription protocol over a websocket.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use voxgate_pipeline::providers::deepgram::{DeepgramConfig, DeepgramStt};
use voxgate_pipeline::providers::{CancellationToken, ProviderError, SpeechToText, SttEvent, SttInput};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn results(text: &str, is_final: bool, speech_final: bool) -> Message {
    let body = json!({
        "type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0,
        "is_final": is_final, "speech_final": speech_final, "from_finalize": is_final,
        "channel": {"alternatives": [{"transcript": text, "confidence": 0.98, "words": []}]},
        "metadata": {"request_id": "req-1", "model_info": {"name": "general", "version": "1", "arch": "nova-3"}, "model_uuid": "u-1"},
    });
    Message::text(body.to_string())
}

/// Refuses a websocket handshake with an HTTP status, as Deepgram does.
fn refuse(status: u16) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(format!("{{\"err_code\":\"{status}\"}}")));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r
}

/// One connection: checks the handshake, then plays Deepgram's part. The
/// API key picks the behaviour: `test-key` works, `drop` loses the socket
/// mid-stream, `busy` is rate limited, anything else is refused.
async fn serve_one(stream: tokio::net::TcpStream) {
    let key = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = key.clone();
    #[allow(clippy::result_large_err, reason = "tungstenite's handshake callback fixes this signature")]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let token = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let query = req.uri().query().unwrap_or("");
        if req.uri().path() != "/v1/listen"
            || !query.contains("encoding=linear16")
            || !query.contains("sample_rate=16000")
            || !query.contains("language=en-GB")
            // The agent's vocabulary, as Nova-3 keyterms.
            || !query.contains("keyterm=Cigna")
            || !query.contains("keyterm=Doctor+Patel") && !query.contains("keyterm=Doctor%20Patel")
        {
            return Err(refuse(400));
        }
        if let Ok(mut k) = seen.lock() {
            k.clone_from(&token);
        }
        match token.as_str() {
            "Token test-key" | "Token drop" => Ok(resp),
            "Token busy" => Err(refuse(429)),
            _ => Err(refuse(401)),
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else { return };
    let behaviour = key.lock().map(|k| k.clone()).unwrap_or_default();
    let mut audio_bytes = 0usize;
    let mut interim_sent = false;
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(b) => {
                audio_bytes += b.len();
                if audio_bytes >= 16_000 && !interim_sent {
                    if behaviour == "Token drop" {
                        return; // the socket goes away without a close frame
                    }
                    interim_sent = true;
                    let started = json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": 0.1});
                    let _ = ws.send(Message::text(started.to_string())).await;
                    let _ = ws.send(results("book a", false, false)).await;
                }
            }
            Message::Text(t) => {
                let t = t.to_string();
                if t.contains("Finalize") {
                    let _ = ws.send(results("Book a table for two.", true, true)).await;
                    let end = json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.9});
                    let _ = ws.send(Message::text(end.to_string())).await;
                } else if t.contains("CloseStream") {
                    let _ = ws.close(None).await;
                    return;
                }
                // KeepAlive needs no answer.
            }
            _ => {}
        }
    }
}

async fn server() -> Result<String, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_one(stream));
        }
    });
    Ok(format!("http://{addr}"))
}

fn stt(url: &str, key: &str) -> DeepgramStt {
    DeepgramStt::new(DeepgramConfig {
        base_url: url.into(),
        api_key: key.into(),
        model: "nova-3".into(),
        language: "en-GB".into(),
        endpointing_ms: 300,
        utterance_end_ms: 1000,
        vocabulary: vec!["Cigna".into(), "Doctor Patel".into()],
    })
}

async fn events_of(
    key: &str,
    frames: usize,
    end_of_speech: bool,
) -> Result<Vec<Result<SttEvent, ProviderError>>, Box<dyn std::error::Error>> {
    let url = server().await?;
    let mut stream = stt(&url, key).open(CancellationToken::new())?;
    for _ in 0..frames {
        if stream.input.send(SttInput::Audio(vec![100; 320])).await.is_err() {
            break; // the provider ended (an error is waiting on `events`)
        }
    }
    if end_of_speech {
        let _ = stream.input.send(SttInput::EndOfSpeech).await;
        // Give the server a moment to answer before closing our side.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    drop(stream.input);
    let mut out = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.events.recv()).await
    {
        out.push(e);
    }
    Ok(out)
}

#[tokio::test]
async fn streams_audio_and_reports_interim_final_and_utterance_end() -> TestResult {
    let events: Vec<SttEvent> =
        events_of("test-key", 50, true).await?.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(
        events,
        [
            SttEvent::SpeechStarted,
            SttEvent::Interim { text: "book a".into() },
            SttEvent::Final { text: "Book a table for two.".into(), speech_final: true },
            SttEvent::UtteranceEnd,
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_key_and_a_rate_limit_are_typed() -> TestResult {
    let events = events_of("wrong", 5, false).await?;
    assert!(matches!(events.last(), Some(Err(ProviderError::Unauthorized { .. }))), "{events:?}");
    let events = events_of("busy", 5, false).await?;
    assert!(
        matches!(events.last(), Some(Err(e @ ProviderError::RateLimited { .. })) if e.is_retryable()),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_socket_dropped_mid_stream_is_a_retryable_error() -> TestResult {
    let events = events_of("drop", 100, false).await?;
    assert!(
        matches!(events.last(), Some(Err(e @ ProviderError::Connection { .. })) if e.is_retryable()),
        "{events:?}"
    );
    Ok(())
}
