//! The HTTP side: health now, the control API later.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The VAD backend in use.
    pub vad: &'static str,
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    vad: &'static str,
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION"), vad: state.vad })
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
}
