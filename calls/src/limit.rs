//! The public endpoints' rate limit, per client network: both planes'
//! routers put it on the endpoints anyone may call.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// Refuses (429) a client that exceeds its share of the public endpoints:
/// a middleware (`axum::middleware::from_fn_with_state(limit, rate_limited)`).
pub async fn rate_limited(
    State(limit): State<Option<Arc<PublicLimit>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if let Some(limit) = &limit {
        let admitted = limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(std::time::Instant::now(), peer.ip());
        if !admitted {
            let body = axum::Json(serde_json::json!({ "error": "too many requests; slow down" }));
            return (axum::http::StatusCode::TOO_MANY_REQUESTS, body).into_response();
        }
    }
    next.run(request).await
}
