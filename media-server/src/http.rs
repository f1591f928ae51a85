//! The HTTP side: health and readiness, metrics, the media endpoints
//! (websocket streams, WebRTC, chat, the widget) and the control API
//! ([`crate::api`]). Public endpoints are rate limited per client network.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::config::Secret;
use crate::sip::Dialer;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where this server's HTTP listener is bound (agent tests call it back here).
    pub addr: std::net::SocketAddr,
    /// The VAD backend in use.
    pub vad: &'static str,
    /// The agent and its providers, e.g. `local-stt`.
    pub agent: AgentInfo,
    /// Places outbound calls; `None` when SIP is off.
    pub dialer: Option<Dialer>,
    /// `http.api_key`: a control API key for the default tenant; empty: none.
    pub api_key: Secret,
    /// Records, logins, recordings.
    pub control: Arc<crate::api::Control>,
    /// Requests to public endpoints, per client address.
    pub public_limit: Option<Arc<PublicLimit>>,
    /// What calls are made of (websocket streams start them here).
    pub calls: std::sync::Arc<crate::calls::CallContext>,
    /// WebRTC calls in progress.
    pub webrtc: crate::webrtc::Calls,
}

/// What `/healthz` says about the agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub name: String,
    pub stt: &'static str,
    pub llm: &'static str,
    pub tts: &'static str,
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    vad: &'static str,
    agent: AgentInfo,
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION"), vad: state.vad, agent: state.agent })
}

/// Prometheus text format.
async fn metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], voxgate_pipeline::metrics::encode())
}

/// `GET /readyz`: 200 when the database answers, else 503 (take this node
/// out of the load balancer; `/healthz` says whether the process lives).
async fn readyz(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), state.control.store.ping()).await;
    match ping {
        Ok(Ok(())) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: database");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "database unavailable" })))
                .into_response()
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 3 s");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "database unavailable" })))
                .into_response()
        }
    }
}

/// A token bucket per client network (/24, /56), for the public endpoints:
/// the same bounded limiter as SIP's.
pub type PublicLimit = std::sync::Mutex<voxgate_sip_bridge::limiter::RateLimiter>;

/// A limiter allowing `per_second` requests per client network, bursts of
/// twice that, remembering at most 100 000 networks; `None` for 0.
#[must_use]
pub fn public_limit(per_second: u32) -> Option<Arc<PublicLimit>> {
    (per_second > 0).then(|| {
        Arc::new(std::sync::Mutex::new(voxgate_sip_bridge::limiter::RateLimiter::new(per_second, 100_000)))
    })
}

/// Refuses (429) a client that exceeds its share of the public endpoints.
async fn rate_limited(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if let Some(limit) = &state.public_limit {
        let admitted = limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(std::time::Instant::now(), peer.ip());
        if !admitted {
            return crate::api::ApiError::TooManyRequests.into_response();
        }
    }
    next.run(request).await
}
/// Whether `given` is `secret`, compared in time that does not depend on
/// where they differ.
pub fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let public = Router::new()
        .route("/v1/chat", get(crate::chat::chat))
        .route(
            "/v1/webrtc/offer",
            axum::routing::post(crate::webrtc::offer)
                .layer(axum::extract::DefaultBodyLimit::max(crate::webrtc::MAX_OFFER_BYTES)),
        )
        .route("/v1/webrtc/{id}", axum::routing::delete(crate::webrtc::hang_up))
        .route("/", get(crate::widget::demo))
        .route("/widget.js", get(crate::widget::script))
        .route("/widget/frame", get(crate::widget::frame))
        .route("/widget/token", get(crate::widget::token))
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/app.js", get(crate::dashboard::script))
        .route("/v1/auth/login", axum::routing::post(crate::api::login))
        .route("/v1/recordings/{key}", get(crate::api::download))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), rate_limited));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/streams/twilio", get(crate::stream::twilio))
        .route("/v1/streams/twilio/{agent}", get(crate::stream::twilio_for))
        .route("/v1/streams/json", get(crate::stream::json))
        .merge(public)
        .merge(crate::api::router())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(handler_panicked))
        .with_state(state)
}

/// A handler that panicked is a bug: it is logged and answered 500 in the
/// API's error shape, and the server keeps serving.
fn handler_panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "HTTP handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": "internal error" })))
        .into_response()
}

/// How [`serve`] treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// To send a request's headers, and to idle between kept-alive requests.
    pub header_timeout: std::time::Duration,
    /// To answer a request (408 after that).
    pub request_timeout: std::time::Duration,
}

impl ConnectionLimits {
    #[must_use]
    pub fn from_config(http: &crate::config::HttpConfig) -> Self {
        let secs = |s: u32| std::time::Duration::from_secs(u64::from(s.max(1)));
        Self {
            max_connections: usize::try_from(http.max_connections.max(1)).unwrap_or(usize::MAX),
            header_timeout: secs(http.header_timeout_s),
            request_timeout: secs(http.request_timeout_s),
        }
    }
}

/// Serves `app` on `listener` until `stop`, within `limits`: a client that
/// opens connections and sends nothing, sends its headers a byte at a time,
/// or keeps idle connections open cannot hold the listener. (`axum::serve`
/// has none of these limits, so connections are served here through
/// hyper's HTTP/1.1 builder with a timer.) Each request carries the client's
/// address (`ConnectInfo`). On `stop`, requests in flight are finished (10 s at most).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    // HTTP/1.1 only: hyper-util's HTTP/2 detection waits for the first bytes
    // with no timeout at all, so a client that connects and says nothing
    // would hold its connection forever. hyper runs the header timer from
    // the connection's start and again while a kept-alive connection idles.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(place) = open.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer.ip(), "HTTP connection refused: http.max_connections are open");
            drop(stream);
            continue;
        };
        let service = app.clone().map_request(move |mut request: axum::extract::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(client = %peer.ip(), error = %e, "HTTP connection ended");
            }
            drop(place);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(std::time::Duration::from_secs(10), connections.wait()).await.is_err() {
        tracing::warn!("HTTP requests still running after 10 s of shutdown; leaving them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unused_async)]
    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_500_and_the_server_serves_on() {
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(handler_panicked));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let boom = client
            .get(format!("http://{addr}/boom"))
            .send()
            .await
            .expect("an answer, not a closed connection");
        assert_eq!(boom.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(boom.json::<serde_json::Value>().await.expect("JSON")["error"], "internal error");
        let fine = client.get(format!("http://{addr}/fine")).send().await.expect("an answer");
        assert_eq!(fine.text().await.expect("a body"), "fine");
        server.abort();
    }
}
