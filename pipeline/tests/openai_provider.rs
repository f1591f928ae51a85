//! The OpenAI-compatible provider against a local server that speaks the
//! chat completions streaming protocol (server-sent events), including
//! refusals, rate limits, server errors and a stream dropped mid-reply.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use voxgate_pipeline::providers::openai::{OpenAiChat, OpenAiConfig};
use voxgate_pipeline::providers::{
    CancellationToken, ChatMessage, ChatRequest, LanguageModel, LlmEvent, ProviderError, ResponseSchema,
    Role, ToolSpec,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Seen = Arc<Mutex<Vec<Value>>>;

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {body}\n\n")
}

/// Sends the parts 10 ms apart, as a model streams tokens.
fn sse(parts: Vec<Result<String, std::io::Error>>) -> Response {
    use futures::StreamExt as _;
    let stream = futures::stream::iter(parts).then(|part| async move {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        part
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response()
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "error", "param": null, "code": null}})))
        .into_response()
}

/// The server picks its behaviour from the requested model name.
async fn completions(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Bearer test-key") {
        return api_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return api_error(StatusCode::BAD_REQUEST, "not JSON");
    };
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    if let Ok(mut seen) = seen.lock() {
        seen.push(request);
    }
    match model.as_str() {
        "ok" => sse(vec![
            Ok(chunk(json!({"role": "assistant", "content": ""}), None)),
            Ok(chunk(json!({"content": "We open"}), None)),
            Ok(chunk(json!({"content": " at nine."}), None)),
            Ok(chunk(json!({}), Some("stop"))),
            // Asked for with stream_options.include_usage: no choices, the tokens used.
            Ok(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [], "usage": {"prompt_tokens": 57, "completion_tokens": 4, "total_tokens": 61}})
            )),
            Ok("data: [DONE]\n\n".into()),
        ]),
        "tools" => sse(vec![
            Ok(chunk(
                json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "book_table", "arguments": "{\"peo"}}]}),
                None,
            )),
            Ok(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "ple\": 2}"}}]}), None)),
            Ok(chunk(json!({}), Some("tool_calls"))),
            Ok("data: [DONE]\n\n".into()),
        ]),
        "rate" => api_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached"),
        "boom" => (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response(),
        "bad" => api_error(StatusCode::BAD_REQUEST, "Unknown parameter"),
        // Two pieces of the reply, then the connection breaks.
        _ => sse(vec![
            Ok(chunk(json!({"content": "We"}), None)),
            Ok(chunk(json!({"content": " open"}), None)),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped")),
        ]),
    }
}

async fn server() -> Result<(String, Seen), Box<dyn std::error::Error>> {
    let seen: Seen = Arc::default();
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}/v1"), seen))
}

fn provider(base_url: &str, model: &str, key: &str) -> OpenAiChat {
    OpenAiChat::new(&OpenAiConfig { base_url: base_url.into(), api_key: key.into(), model: model.into() })
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You are a bakery's phone assistant."),
            ChatMessage::new(Role::User, "When do you open on Saturday?"),
        ],
        knowledge: vec!["On Saturdays the bakery opens at 9 am.".into()],
        tools: vec![ToolSpec {
            name: "book_table".into(),
            description: "Book a table".into(),
            parameters: r#"{"type":"object","properties":{"people":{"type":"integer"}}}"#.into(),
        }],
        max_tokens: 100,
        temperature: 0.2,
        response_schema: None,
    }
}

/// Everything the stream sent, until it ended.
async fn collect(llm: &OpenAiChat) -> Vec<Result<LlmEvent, ProviderError>> {
    let mut rx = llm.stream(request(), CancellationToken::new());
    let mut out = Vec::new();
    while let Some(e) =
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.ok().flatten()
    {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn streams_the_reply_and_sends_knowledge_and_tools() -> TestResult {
    let (url, seen) = server().await?;
    let events = collect(&provider(&url, "ok", "test-key")).await;
    let events: Vec<LlmEvent> = events.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(
        events,
        [
            LlmEvent::Delta("We open".into()),
            LlmEvent::Delta(" at nine.".into()),
            LlmEvent::Usage { prompt_tokens: 57, completion_tokens: 4 },
            LlmEvent::Done
        ]
    );
    let sent = seen.lock().map_err(|e| e.to_string())?[0].clone();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(sent.get("response_format").is_none(), "plain replies ask for no format");
    assert_eq!(sent["max_tokens"], 100);
    let system = sent["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(
        system.contains("On Saturdays the bakery opens at 9 am."),
        "knowledge in the system prompt: {system}"
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "book_table");
    assert_eq!(sent["tools"][0]["function"]["parameters"]["properties"]["people"]["type"], "integer");
    Ok(())
}

#[tokio::test]
async fn a_response_schema_asks_for_structured_output() -> TestResult {
    let (url, seen) = server().await?;
    let schema = r#"{"type":"object","properties":{"summary":{"type":"string"}},"required":["summary"],"additionalProperties":false}"#;
    let request = ChatRequest {
        response_schema: Some(ResponseSchema { name: "call_analytics".into(), schema: schema.into() }),
        ..request()
    };
    let mut rx = provider(&url, "ok", "test-key").stream(request, CancellationToken::new());
    while tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await?.is_some() {}
    let sent = seen.lock().map_err(|e| e.to_string())?[0].clone();
    let format = &sent["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "call_analytics");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(format["json_schema"]["schema"]["required"][0], "summary");
    Ok(())
}

#[tokio::test]
async fn assembles_a_tool_call_streamed_in_pieces() -> TestResult {
    let (url, _) = server().await?;
    let events: Vec<LlmEvent> =
        collect(&provider(&url, "tools", "test-key")).await.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 2, "{events:?}");
    let LlmEvent::ToolCall(call) = &events[0] else { return Err(format!("{events:?}").into()) };
    assert_eq!((call.id.as_str(), call.name.as_str()), ("call_1", "book_table"));
    let args: Value = serde_json::from_str(&call.arguments)?;
    assert_eq!(args["people"], 2);
    assert_eq!(events[1], LlmEvent::Done);
    Ok(())
}

#[tokio::test]
async fn errors_say_whether_a_retry_may_help() -> TestResult {
    let (url, _) = server().await?;
    let last = |events: Vec<Result<LlmEvent, ProviderError>>| events.into_iter().last();

    let e = last(collect(&provider(&url, "ok", "wrong-key")).await);
    assert!(matches!(e, Some(Err(ProviderError::Unauthorized { .. }))), "{e:?}");

    let e = last(collect(&provider(&url, "rate", "test-key")).await);
    assert!(matches!(&e, Some(Err(err @ ProviderError::RateLimited { .. })) if err.is_retryable()), "{e:?}");

    let e = last(collect(&provider(&url, "boom", "test-key")).await);
    assert!(
        matches!(&e, Some(Err(err @ ProviderError::Server { status: 503, .. })) if err.is_retryable()),
        "{e:?}"
    );

    let e = last(collect(&provider(&url, "bad", "test-key")).await);
    assert!(
        matches!(&e, Some(Err(err @ ProviderError::Rejected { status: 400, .. })) if !err.is_retryable()),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stream_dropped_mid_reply_is_a_retryable_connection_error() -> TestResult {
    let (url, _) = server().await?;
    let events = collect(&provider(&url, "drop", "test-key")).await;
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::Delta(d)) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "We open", "what arrived before the drop is kept");
    let last = events.last();
    assert!(matches!(last, Some(Err(e @ ProviderError::Connection { .. })) if e.is_retryable()), "{last:?}");
    assert!(!events.iter().any(|e| matches!(e, Ok(LlmEvent::Done))));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() -> TestResult {
    // Port 9 on loopback: nothing listens there.
    let events = collect(&provider("http://127.0.0.1:9/v1", "ok", "test-key")).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::Connection { .. }))), "{events:?}");
    Ok(())
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let config =
        OpenAiConfig { base_url: "http://x/v1".into(), api_key: "sk-secret".into(), model: "m".into() };
    assert!(!format!("{config:?}").contains("sk-secret"));
    assert!(!format!("{:?}", OpenAiChat::new(&config)).contains("sk-secret"));
}
