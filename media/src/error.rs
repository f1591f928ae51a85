//! The media plane's errors: why a call could not start, and the refusals
//! its HTTP endpoints answer (in the control API's error shape,
//! `{"error": "..."}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use voxgate_calls::agent::DirectoryError;

/// No RTP port of the configured range is free.
#[derive(Debug, thiserror::Error)]
#[error("no free RTP port in {min}..{max}")]
pub struct NoFreePort {
    pub min: u16,
    pub max: u16,
}

/// A call could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Its voice activity detector cannot be built.
    #[error("voice activity detector: {0}")]
    Vad(#[from] voxgate_pipeline::dsp::vad::VadError),
    /// Its codec cannot be set up.
    #[error(transparent)]
    Core(#[from] voxgate_pipeline::call::CallError),
    /// No media port is free.
    #[error(transparent)]
    Port(#[from] NoFreePort),
    /// The offer or answer cannot be used.
    #[error("{0}")]
    Negotiation(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A media endpoint's refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("too many requests; slow down")]
    TooManyRequests,
    #[error("{0}")]
    Unavailable(String),
}

impl From<DirectoryError> for Refusal {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Unknown(_) => Self::NotFound("agent"),
            DirectoryError::Unavailable(why) => {
                tracing::error!(error = %why, "agent unavailable");
                Self::Unavailable("the agent is unavailable".into())
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
