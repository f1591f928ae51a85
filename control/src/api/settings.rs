//! The tenant's own settings (admins only): its Twilio auth token, which
//! its Twilio Media Streams must be signed with.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson};
use crate::api::AppState;
use crate::auth::Caller;

/// `PUT /v1/settings/twilio`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    /// The Twilio account's auth token (a secret: never shown again).
    pub auth_token: String,
}

/// Whether a Twilio auth token is set (never the token).
#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioStatus {
    pub auth_token_set: bool,
}

/// Whether the tenant has a Twilio auth token.
#[utoipa::path(get, path = "/v1/settings/twilio", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TwilioStatus)))]
pub async fn read_twilio(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TwilioStatus>, ApiError> {
    let set = state.control.store.twilio_auth_token(&caller.tenant_id).await?.is_some();
    Ok(Json(TwilioStatus { auth_token_set: set }))
}

/// Sets the tenant's Twilio auth token: from now on its agents' Twilio
/// streams (`/v1/streams/twilio/{agent}`) need Twilio's signature.
#[utoipa::path(put, path = "/v1/settings/twilio", tag = "auth", security(("bearer" = [])), request_body = TwilioSettings,
    responses((status = 200, body = TwilioStatus)))]
pub async fn set_twilio(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TwilioSettings>,
) -> Result<Json<TwilioStatus>, ApiError> {
    let token = req.auth_token.trim();
    if token.is_empty() || token.len() > 256 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(crate::agent::spec::SpecError {
            field: "auth_token".into(),
            reason: "1 to 256 printable characters".into(),
        }
        .into());
    }
    state.control.store.set_twilio_auth_token(&caller.tenant_id, Some(token)).await?;
    tracing::info!(tenant = %caller.tenant_id, by = %caller.subject, "Twilio auth token set");
    Ok(Json(TwilioStatus { auth_token_set: true }))
}

/// Removes the tenant's Twilio auth token.
#[utoipa::path(delete, path = "/v1/settings/twilio", tag = "auth", security(("bearer" = [])),
    responses((status = 204)))]
pub async fn remove_twilio(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.control.store.set_twilio_auth_token(&caller.tenant_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
