//! The media plane's HTTP endpoints: websocket streams, WebRTC offers, chat
//! and the widget. Public ones are rate limited per client network.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{delete, get, post};
use voxgate_calls::limit::{PublicLimit, rate_limited};

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
