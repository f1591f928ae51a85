//! The HTTP side: health and metrics now, the control API later.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The VAD backend in use.
    pub vad: &'static str,
    /// The agent and its providers, e.g. `local-stt`.
    pub agent: AgentInfo,
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

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(state)
}
