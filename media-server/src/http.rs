//! The HTTP listener: health and readiness, metrics, the media plane's
//! endpoints ([`voxgate_media::http`]: websocket streams, WebRTC, chat, the
//! widget) and the control plane's ([`voxgate_control::api`], the dashboard). Public
//! endpoints are rate limited per client network.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use voxgate_control::api::{AgentInfo, AppState};

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
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        voxgate_pipeline::metrics::encode_with(&[
            voxgate_media::metrics::registry(),
            voxgate_control::metrics::registry(),
        ]),
    )
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

/// All routes: the media plane's (`media`) and the control plane's.
pub fn router(state: AppState, media: voxgate_media::http::MediaState) -> Router {
    let media = voxgate_media::http::router(media, state.public_limit.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(voxgate_control::api::router(state.public_limit.clone()))
        .with_state(state)
        .merge(media)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(handler_panicked))
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
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
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

    #[tokio::test]
    async fn metrics_hold_every_planes_and_end_once() {
        use voxgate_control::metrics::JobLabel;
        use voxgate_media::metrics::ChannelLabel;
        let chat = ChannelLabel::from(voxgate_domain::Channel::Chat);
        voxgate_media::metrics::metrics().bad_frames.get_or_create(&chat).inc();
        let email = JobLabel { kind: "email".into(), outcome: "done" };
        voxgate_control::metrics::metrics().post_call_jobs.get_or_create(&email).inc();
        let (_, text) = metrics().await;
        assert!(text.contains("voxgate_bad_frames_total{channel=\"chat\"} 1"), "{text}");
        assert!(text.contains("voxgate_post_call_jobs_total{kind=\"email\",outcome=\"done\"} 1"), "{text}");
        assert!(text.contains("# TYPE voxgate_active_sessions gauge"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
