//! The media plane's HTTP endpoints: websocket streams, WebRTC offers, chat
//! and the widget. Public ones are rate limited per client network.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRef, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::calls::CallContext;

/// What the media handlers share; each takes the part it needs.
#[derive(Debug, Clone)]
pub struct MediaState {
    /// What calls are made of.
    pub calls: Arc<CallContext>,
    /// WebRTC calls in progress.
    pub webrtc: crate::webrtc::Calls,
}

impl FromRef<MediaState> for Arc<CallContext> {
    fn from_ref(state: &MediaState) -> Self {
        state.calls.clone()
    }
}

impl FromRef<MediaState> for crate::webrtc::Calls {
    fn from_ref(state: &MediaState) -> Self {
        state.webrtc.clone()
    }
}

/// The media endpoints. `limit` bounds each client network's requests to
/// the public ones (chat, WebRTC, the widget).
pub fn router(state: MediaState, limit: Option<Arc<PublicLimit>>) -> Router {
    let public = Router::new()
        .route("/v1/chat", get(crate::chat::chat))
        .route(
            "/v1/webrtc/offer",
            post(crate::webrtc::offer)
                .layer(axum::extract::DefaultBodyLimit::max(crate::webrtc::MAX_OFFER_BYTES)),
        )
        .route("/v1/webrtc/{id}", delete(crate::webrtc::hang_up))
        .route("/", get(crate::widget::demo))
        .route("/widget.js", get(crate::widget::script))
        .route("/widget/frame", get(crate::widget::frame))
        .route("/widget/token", get(crate::widget::token))
        .route_layer(axum::middleware::from_fn_with_state(limit, rate_limited));
    Router::new()
        .route("/v1/streams/twilio", get(crate::stream::twilio))
        .route("/v1/streams/twilio/{agent}", get(crate::stream::twilio_for))
        .route("/v1/streams/json", get(crate::stream::json))
        .merge(public)
        .with_state(state)
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
            return crate::error::Refusal::TooManyRequests.into_response();
        }
    }
    next.run(request).await
}
