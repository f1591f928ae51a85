//! WhatsApp ([`crate::whatsapp`]): a tenant registers its Meta apps and
//! routes their phone numbers to its agents; Meta calls each app's webhook,
//! `/v1/whatsapp/{app}/webhook`, signed with that app's secret.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, AppState};
use crate::agent::spec::SpecError;
use crate::auth::Caller;
use crate::store::{WhatsAppApp, WhatsAppNumber, new_id, now_ms};
use crate::whatsapp::{WhatsAppError, signature};

/// `POST /v1/whatsapp/apps`: a Meta app's id and secrets (never shown again).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Meta's id of the app.
    pub meta_app_id: String,
    /// The app secret: Meta signs the app's webhooks with it.
    pub app_secret: String,
    /// Any string you also give Meta when subscribing the webhook.
    pub verify_token: String,
    /// A (system user) access token with `whatsapp_business_messaging`.
    pub access_token: String,
}

/// A registered app (its secrets are never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppSummary {
    pub id: String,
    pub meta_app_id: String,
    /// Give Meta this callback URL (and the verify token) for the app's webhook.
    pub webhook_url: String,
    pub numbers: Vec<WhatsAppNumber>,
    pub created_at: i64,
}

/// `PUT /v1/whatsapp/apps/{id}/numbers/{phone_number_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberRoute {
    /// One of the tenant's agents (the default tenant may name `""`, the configured agent).
    pub agent: String,
}

fn invalid(field: &str, reason: &str) -> ApiError {
    SpecError { field: field.into(), reason: reason.into() }.into()
}

fn printable(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > max || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(field, &format!("1 to {max} printable characters")));
    }
    Ok(())
}

impl From<WhatsAppError> for ApiError {
    fn from(e: WhatsAppError) -> Self {
        match e {
            WhatsAppError::Store(e) => e.into(),
            WhatsAppError::Agent(e) => e.into(),
            WhatsAppError::Unreadable(e) => Self::BadRequest(e.to_string()),
            WhatsAppError::NotFound(what) => Self::NotFound(what),
            WhatsAppError::Conflict(why) => Self::Conflict(why),
            e @ WhatsAppError::OutsideWindow => Self::Conflict(e.to_string()),
            WhatsAppError::OverPlan(why) => Self::PaymentRequired(why),
            e @ WhatsAppError::Graph(_) => {
                Self::Request { status: StatusCode::BAD_GATEWAY, message: e.to_string() }
            }
        }
    }
}

async fn summary(state: &AppState, headers: &HeaderMap, app: &WhatsAppApp) -> Result<AppSummary, ApiError> {
    Ok(AppSummary {
        id: app.id.clone(),
        meta_app_id: app.meta_app_id.clone(),
        webhook_url: format!("{}/v1/whatsapp/{}/webhook", super::calls::base_url(state, headers), app.id),
        numbers: state.control.store.whatsapp_numbers(&app.tenant_id, &app.id).await?,
        created_at: app.created_at,
    })
}

/// Registers one of the tenant's Meta apps.
#[utoipa::path(post, path = "/v1/whatsapp/apps", tag = "whatsapp", security(("bearer" = [])), request_body = NewApp,
    responses((status = 201, body = AppSummary), (status = 422, body = super::ErrorBody)))]
pub async fn add_app(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NewApp>,
) -> Result<(StatusCode, Json<AppSummary>), ApiError> {
    printable("meta_app_id", &req.meta_app_id, 64)?;
    printable("app_secret", &req.app_secret, 256)?;
    printable("verify_token", &req.verify_token, 256)?;
    printable("access_token", &req.access_token, 1024)?;
    let app = WhatsAppApp {
        id: new_id("wa"),
        tenant_id: caller.tenant_id.clone(),
        meta_app_id: req.meta_app_id,
        app_secret: req.app_secret,
        verify_token: req.verify_token,
        access_token: req.access_token,
        created_at: now_ms(),
    };
    state.control.store.add_whatsapp_app(&app).await?;
    tracing::info!(app = %app.id, by = %caller.subject, "WhatsApp app registered");
    Ok((StatusCode::CREATED, Json(summary(&state, &headers, &app).await?)))
}

/// The tenant's Meta apps.
#[utoipa::path(get, path = "/v1/whatsapp/apps", tag = "whatsapp", security(("bearer" = [])),
    responses((status = 200, body = Vec<AppSummary>)))]
pub async fn list_apps(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<Vec<AppSummary>>, ApiError> {
    let mut apps = Vec::new();
    for app in state.control.store.whatsapp_apps(&caller.tenant_id).await? {
        apps.push(summary(&state, &headers, &app).await?);
    }
    Ok(Json(apps))
}

/// Removes one of the tenant's Meta apps and its numbers' routes.
#[utoipa::path(delete, path = "/v1/whatsapp/apps/{id}", tag = "whatsapp", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub async fn remove_app(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.control.store.remove_whatsapp_app(&caller.tenant_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("app"))
    }
}

/// Routes one of the app's WhatsApp numbers (Meta's phone-number id) to an agent.
#[utoipa::path(put, path = "/v1/whatsapp/apps/{id}/numbers/{phone_number_id}", tag = "whatsapp",
    security(("bearer" = [])), request_body = NumberRoute,
    params(("id" = String, Path), ("phone_number_id" = String, Path)),
    responses((status = 200, body = WhatsAppNumber), (status = 404, body = super::ErrorBody),
        (status = 409, description = "Another tenant routes that number", body = super::ErrorBody),
        (status = 422, body = super::ErrorBody)))]
pub async fn route_number(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, phone_number_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<NumberRoute>,
) -> Result<Json<WhatsAppNumber>, ApiError> {
    let store = &state.control.store;
    match store.whatsapp_app(&id).await? {
        Some(app) if app.tenant_id == caller.tenant_id => {}
        _ => return Err(ApiError::NotFound("app")),
    }
    if phone_number_id.is_empty()
        || phone_number_id.len() > 32
        || !phone_number_id.chars().all(|c| c.is_ascii_digit())
    {
        return Err(invalid("phone_number_id", "Meta's phone-number id: 1 to 32 digits"));
    }
    let agent_ok = if req.agent.is_empty() {
        caller.tenant_id == state.control.default_tenant
    } else {
        store.agent(&caller.tenant_id, &req.agent).await?.is_some()
    };
    if !agent_ok {
        return Err(ApiError::NotFound("agent"));
    }
    let number = WhatsAppNumber {
        phone_number_id,
        app_id: id,
        tenant_id: caller.tenant_id.clone(),
        agent_id: req.agent,
    };
    store.set_whatsapp_number(&number).await?;
    Ok(Json(number))
}

/// Meta's verification of a webhook it is given.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Verification {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Meta checks a webhook before it sends to it: the app's verify token
/// answers with Meta's challenge; anything else is 403.
#[utoipa::path(get, path = "/v1/whatsapp/{app}/webhook", tag = "whatsapp",
    params(("app" = String, Path), Verification),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 403, body = super::ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<Verification>,
) -> Result<String, ApiError> {
    let refused = ApiError::Forbidden("not this app's verify token");
    let Some(app) = state.control.store.whatsapp_app(&app).await? else { return Err(refused) };
    let token_ok = q.verify_token.as_deref().is_some_and(|t| {
        aws_lc_rs::constant_time::verify_slices_are_equal(t.as_bytes(), app.verify_token.as_bytes()).is_ok()
    });
    match (q.mode.as_deref(), q.challenge) {
        (Some("subscribe"), Some(challenge)) if token_ok && challenge.len() <= 256 => Ok(challenge),
        _ => Err(refused),
    }
}

/// Meta's notifications for one app: checked against the app's secret
/// (`X-Hub-Signature-256`) before anything is read; a bad or missing
/// signature is 401 and nothing is stored. Messages are stored (each once)
/// and answered after the 200.
#[utoipa::path(post, path = "/v1/whatsapp/{app}/webhook", tag = "whatsapp", params(("app" = String, Path)),
    request_body(content = String, content_type = "application/json"),
    responses((status = 200), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn notify(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let refused = ApiError::Unauthorized("not signed with this app's secret");
    // An unknown app is refused the same way as a bad signature.
    let Some(app) = state.control.store.whatsapp_app(&app).await? else { return Err(refused) };
    let header = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if !signature::signed(&app.app_secret, &body, header) {
        tracing::warn!(app = %app.id, "a WhatsApp webhook with a bad signature refused");
        return Err(refused);
    }
    state.whatsapp.receive(&app, &body).await?;
    Ok(StatusCode::OK)
}
