//! LiveKit rooms ([`crate::livekit`]): dispatch an agent into a room, take
//! LiveKit's webhooks, and mint room tokens for the tenant's own front end.
//! A tenant names its rooms; LiveKit knows them prefixed with the tenant's
//! id, so a tenant reaches only its own.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, AppState};
use crate::agent::spec::SpecError;
use crate::auth::Caller;
use crate::livekit::{
    Dispatched, LiveKit, LiveKitError, OWN_IDENTITY, Wanted, check_room, room_name, room_tenant,
};

/// `POST /v1/livekit/dispatch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// The room, as the tenant names it (1 to 64 of letters, digits, `_ . -`).
    pub room: String,
    /// One of the tenant's agents; none: the configured agent (the default tenant's).
    pub agent: Option<String>,
}

/// `POST /v1/livekit/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The room, as the tenant names it.
    pub room: String,
    /// Who joins (1 to 128 characters; `voxgate-…` is Voxgate's own).
    pub identity: String,
    /// The name others see; none: the identity.
    pub name: Option<String>,
}

/// A room token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomToken {
    pub token: String,
    /// Where the client connects.
    pub url: String,
    /// The room's name in LiveKit.
    pub room: String,
    /// Unix seconds.
    pub expires_at: u64,
}

fn configured(state: &AppState) -> Result<&Arc<LiveKit>, ApiError> {
    state.livekit.as_ref().ok_or_else(|| ApiError::Request {
        status: StatusCode::NOT_FOUND,
        message: "LiveKit is not configured on this server ([livekit] url)".into(),
    })
}

fn invalid(field: &str, reason: &str) -> ApiError {
    SpecError { field: field.into(), reason: reason.into() }.into()
}

/// Puts an agent in one of the tenant's rooms: LiveKit's SIP service dials
/// the agent's number here, and the call runs like any of the agent's.
#[utoipa::path(post, path = "/v1/livekit/dispatch", tag = "livekit", security(("bearer" = [])),
    request_body = Dispatch,
    responses((status = 201, body = Dispatched),
        (status = 409, description = "The room has an agent", body = super::ErrorBody),
        (status = 422, body = super::ErrorBody), (status = 502, description = "LiveKit refused", body = super::ErrorBody),
        (status = 404, description = "LiveKit is not configured, or no such agent", body = super::ErrorBody)))]
pub async fn dispatch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Dispatch>,
) -> Result<(StatusCode, Json<Dispatched>), ApiError> {
    let livekit = configured(&state)?;
    check_room(&req.room).map_err(|why| invalid("room", why))?;
    let agent = match req.agent.as_deref().filter(|a| !a.is_empty()) {
        // Only the tenant's own agents; another tenant's is as unknown as a missing one.
        Some(id) if state.control.store.agent(&caller.tenant_id, id).await?.is_some() => id.to_owned(),
        Some(_) => return Err(ApiError::NotFound("agent")),
        None if caller.tenant_id == state.control.default_tenant => {
            voxgate_calls::agent::CONFIGURED.to_owned()
        }
        None => return Err(invalid("agent", "name one of the tenant's agents")),
    };
    let room = room_name(&caller.tenant_id, &req.room);
    let dispatched = place(&state, livekit, &room, &agent).await?;
    tracing::info!(dispatch = %dispatched.id, by = %caller.subject, "LiveKit dispatch");
    Ok((StatusCode::CREATED, Json(dispatched)))
}

/// Dispatches `agent` (the room's tenant's, checked) into `room` through its first number.
async fn place(state: &AppState, livekit: &LiveKit, room: &str, agent: &str) -> Result<Dispatched, ApiError> {
    let routes = state.agents.routes().await?;
    let Some(number) = routes.iter().filter(|(_, a)| a.as_str() == agent).map(|(n, _)| n).min() else {
        return Err(invalid("agent", "the agent has no number for LiveKit to dial"));
    };
    livekit.dispatch(room, agent, number).await.map_err(|e| match e {
        LiveKitError::Busy(_) => ApiError::Conflict(e.to_string()),
        e => ApiError::Request { status: StatusCode::BAD_GATEWAY, message: e.to_string() },
    })
}

/// LiveKit's webhooks, signed with the project's key: a participant or
/// room whose metadata names an agent gets it; `room_finished` ends the
/// room's call. An unsigned or altered one is 401 and changes nothing.
#[utoipa::path(post, path = "/v1/livekit/webhook", tag = "livekit",
    request_body(content = String, content_type = "application/webhook+json"),
    responses((status = 200), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, description = "LiveKit is not configured", body = super::ErrorBody)))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let livekit = configured(&state)?;
    let body =
        std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let auth = auth.strip_prefix("Bearer ").unwrap_or(auth);
    let wanted = livekit.webhook(body, auth).map_err(|e| {
        tracing::warn!(error = %e, "a LiveKit webhook refused");
        ApiError::Unauthorized("not signed by this LiveKit project")
    })?;
    if let Some(wanted) = wanted {
        answer(&state, livekit, &wanted).await;
    }
    Ok(StatusCode::OK)
}

/// Dispatches the agent a webhook asked for (a stored agent's id, or the
/// configured agent's name), when it is the room's tenant's.
async fn answer(state: &AppState, livekit: &LiveKit, Wanted { room, agent }: &Wanted) {
    let Some((tenant, _)) = room_tenant(room) else {
        tracing::info!(%room, "a room named for no tenant asked for an agent");
        return;
    };
    // The configured agent goes by its name.
    let agent = if *agent == state.agent.name { voxgate_calls::agent::CONFIGURED } else { agent.as_str() };
    let theirs = if agent.is_empty() {
        tenant == state.control.default_tenant
    } else {
        matches!(state.control.store.agent(tenant, agent).await, Ok(Some(_)))
    };
    if !theirs {
        tracing::warn!(%room, %agent, "a room asked for an agent that is not its tenant's");
        return;
    }
    if let Err(e) = place(state, livekit, room, agent).await {
        tracing::warn!(%room, error = %e, "dispatch on a webhook failed");
    }
}

/// A token to join one of the tenant's rooms, for a short while.
#[utoipa::path(post, path = "/v1/livekit/token", tag = "livekit", security(("bearer" = [])),
    request_body = TokenRequest,
    responses((status = 201, body = RoomToken), (status = 422, body = super::ErrorBody),
        (status = 404, description = "LiveKit is not configured, or no such agent", body = super::ErrorBody)))]
pub async fn token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<RoomToken>), ApiError> {
    let livekit = configured(&state)?;
    check_room(&req.room).map_err(|why| invalid("room", why))?;
    if req.identity.is_empty() || req.identity.len() > 128 || req.identity.chars().any(char::is_control) {
        return Err(invalid("identity", "must be 1 to 128 characters"));
    }
    if req.identity.starts_with(OWN_IDENTITY) {
        return Err(invalid("identity", "voxgate-… is Voxgate's own"));
    }
    let room = room_name(&caller.tenant_id, &req.room);
    let name = req.name.as_deref().unwrap_or(&req.identity);
    let (token, expires_at) = livekit.room_token(&room, &req.identity, name).map_err(|e| {
        tracing::error!(error = %e, "signing a LiveKit token");
        ApiError::Unavailable("the token cannot be signed".into())
    })?;
    Ok((StatusCode::CREATED, Json(RoomToken { token, url: livekit.url().to_owned(), room, expires_at })))
}
