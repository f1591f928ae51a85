//! The HTTP side: health, metrics and the call API (`/v1/calls`: place
//! an outbound call, follow it); the rest of the control API grows here.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::sip::{DialError, Dialer};

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The VAD backend in use.
    pub vad: &'static str,
    /// The agent and its providers, e.g. `local-stt`.
    pub agent: AgentInfo,
    /// Places outbound calls; `None` when SIP is off.
    pub dialer: Option<Dialer>,
    /// The call API's bearer key; empty: the API is off.
    pub api_key: Secret,
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

/// A JSON error: `{"error": "..."}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Checks `Authorization: Bearer <api_key>` (in constant time); the
/// refusal, if any.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let key = state.api_key.expose().as_bytes();
    if key.is_empty() {
        return Some(error(StatusCode::FORBIDDEN, "the call API is off: set http.api_key"));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    (!same_secret(given, state.api_key.expose()))
        .then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer key"))
}

/// Whether `given` is `secret`, compared in time that does not depend on
/// where they differ.
pub fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /v1/calls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceCall {
    /// A `sip:` URI, or a number dialled through the trunk.
    to: String,
    /// Give up when nobody answers within this many seconds (1..=300).
    ring_timeout_s: Option<u32>,
}

async fn place_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<PlaceCall>, JsonRejection>,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(dialer) = state.dialer else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "SIP is off (sip.enabled = false)");
    };
    if req.ring_timeout_s.is_some_and(|s| !(1..=300).contains(&s)) {
        return error(StatusCode::BAD_REQUEST, "ring_timeout_s must be 1..=300");
    }
    let ring = req.ring_timeout_s.map(|s| std::time::Duration::from_secs(u64::from(s)));
    match dialer.dial(&req.to, ring).await {
        Ok(status) => (StatusCode::CREATED, Json(status)).into_response(),
        Err(e @ DialError::BadTarget(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ DialError::Unreachable(_)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e @ DialError::NoMedia(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /v1/calls/{id}`.
async fn call_status(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    match state.dialer.and_then(|d| d.status(&id)) {
        Some(status) => Json(status).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such call"),
    }
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/calls", post(place_call))
        .route("/v1/calls/{id}", get(call_status))
        .route("/v1/streams/twilio", get(crate::stream::twilio))
        .route("/v1/streams/json", get(crate::stream::json))
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
        .with_state(state)
}
