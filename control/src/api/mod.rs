//! The control API under `/v1`: log in, API keys, agents, calls and their
//! recordings. Every handler takes the authenticated [`Caller`] and reads
//! and writes only its tenant's records. Errors are JSON
//! (`{"error": "...", "field": "..."}`) with a 4xx status for anything the
//! client sent; a 500 means a bug or a database failure, never bad input.
//!
//! The OpenAPI 3 document (`openapi.rs`) is built from these handlers.
//!
//! [`Caller`]: crate::auth::Caller

mod agent_tests;
mod agents;
mod analytics;
mod billing;
mod caller;
mod calls;
mod campaigns;
mod conversations;
mod keys;
mod livekit;
mod numbers;
mod openapi;
mod settings;
mod signup;
mod users;
mod whatsapp;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use crate::auth::Tokens;
use crate::store::{Store, StoreError};

pub use calls::download;
pub use keys::login;

/// What the control plane's handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where this server's HTTP listener is bound (agent tests call it back here).
    pub addr: std::net::SocketAddr,
    /// The VAD backend in use.
    pub vad: &'static str,
    /// The agent and its providers, e.g. `local-stt`.
    pub agent: AgentInfo,
    pub config: Arc<crate::config::ControlConfig>,
    /// Places outbound calls; `None` when SIP is off.
    pub dialer: Option<Arc<dyn voxgate_calls::Dialer>>,
    /// `http.api_key`: a control API key for the default tenant; empty: none.
    pub api_key: crate::config::Secret,
    /// Records, logins, recordings.
    pub control: Arc<Control>,
    /// The agents, built and cached.
    pub agents: Arc<crate::agent::registry::Agents>,
    /// Calls' records and recordings.
    pub ledger: Arc<crate::ledger::Ledger>,
    /// Mints the media tokens the media plane checks.
    pub media_tokens: voxgate_calls::tokens::MediaTokens,
    /// Requests to public endpoints, per client address.
    pub public_limit: Option<Arc<voxgate_calls::limit::PublicLimit>>,
    /// The LiveKit project agents are dispatched into; `None`: not configured.
    pub livekit: Option<Arc<crate::livekit::LiveKit>>,
    /// Tenants' WhatsApp numbers and their conversations.
    pub whatsapp: Arc<crate::whatsapp::WhatsApp>,
    /// Businesses signing themselves up, and Stripe's word on their payments.
    pub signups: Arc<crate::signup::Signups>,
}

/// What `/healthz` says about the agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub name: String,
    pub stt: &'static str,
    pub llm: &'static str,
    pub tts: &'static str,
}

#[derive(Debug)]
pub struct Control {
    pub store: Store,
    pub tokens: Tokens,
    /// The tenant of the configured agent and of `http.api_key`.
    pub default_tenant: String,
    /// Analytics reports answered lately.
    pub reports: analytics::ReportCache,
    /// Agent test runs, running and done.
    pub tests: agent_tests::TestRuns,
    /// Failed logins, per account and address.
    pub logins: crate::auth::LoginGuard,
}

/// A control API error, sent as JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body or query could not be read (syntax, types, unknown fields, size).
    #[error("{message}")]
    Request { status: StatusCode, message: String },
    /// A field has a value out of range.
    #[error("{0}")]
    Invalid(#[from] crate::agent::spec::SpecError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The credentials are good but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// Too many failed logins for this account from this address.
    #[error("too many failed logins; try again in {0} s")]
    LoginBackoff(u64),
    #[error("{0}")]
    Unavailable(String),
    /// The tenant's plan does not allow it (or it is suspended).
    #[error("{0}")]
    PaymentRequired(String),
    /// A database failure: logged, not shown.
    #[error("internal error")]
    Store(StoreError),
}

impl From<crate::agent::registry::AgentError> for ApiError {
    fn from(e: crate::agent::registry::AgentError) -> Self {
        use crate::agent::registry::AgentError;
        match e {
            AgentError::Unknown(_) => Self::NotFound("agent"),
            AgentError::Store(e) => Self::Store(e),
            e => {
                tracing::error!(error = %e, "agent unavailable");
                Self::Unavailable("the agent is unavailable".into())
            }
        }
    }
}

impl From<crate::plans::PlanCheck> for ApiError {
    fn from(e: crate::plans::PlanCheck) -> Self {
        match e {
            crate::plans::PlanCheck::Over(over) => Self::PaymentRequired(over.0),
            crate::plans::PlanCheck::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what } => Self::Conflict(format!("{what} is already in use")),
            StoreError::NotAssigned { number } => Self::Invalid(crate::agent::spec::SpecError {
                field: "numbers".into(),
                reason: format!("{number} is not one of this tenant's numbers (the operator assigns them)"),
            }),
            // The database is away (not a bug): tell the client to come back.
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_),
            ) => {
                tracing::warn!(error = %e, "control API: database unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            e => Self::Store(e),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    error: String,
    /// The offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Request { status, .. } => *status,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::LoginBackoff(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Store(e) => {
                tracing::error!(error = %e, "control API: database failure");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let field = match &self {
            Self::Invalid(e) => Some(e.field.clone()),
            _ => None,
        };
        let message = match &self {
            Self::Invalid(e) => e.reason.clone(),
            e => e.to_string(),
        };
        let mut response = (status, Json(ErrorBody { error: message, field })).into_response();
        if let Self::LoginBackoff(s) = self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        response
    }
}

/// A JSON object body whose rejections are [`ApiError`]s (JSON, with the
/// reason). Every body the API takes is an object: serde would also read a
/// struct from an array of its fields, which the documented schema refuses.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) =
            Json::<serde_json::Value>::from_request(req, state).await.map_err(|e| rejected_json(&e))?;
        let unprocessable =
            |message: String| ApiError::Request { status: StatusCode::UNPROCESSABLE_ENTITY, message };
        if !value.is_object() {
            return Err(unprocessable("the body must be a JSON object".into()));
        }
        T::deserialize(value).map(Self).map_err(|e| {
            unprocessable(format!("Failed to deserialize the JSON body into the target type: {e}"))
        })
    }
}

fn rejected_json(e: &JsonRejection) -> ApiError {
    ApiError::Request { status: e.status(), message: e.body_text() }
}

/// Query parameters whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(rejected_query(&e)),
        }
    }
}

fn rejected_query(e: &QueryRejection) -> ApiError {
    ApiError::Request { status: StatusCode::BAD_REQUEST, message: e.body_text() }
}

/// Control API bodies are small; knowledge uploads are the largest.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Who may call a route of [`routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Anyone (login, signed recording links): rate limited per client network.
    Public,
    /// Credentials ([`crate::auth::Caller`]) decide.
    Credentials,
}

/// Every route of the control API, with its handlers: the router is built
/// from this list, and the OpenAPI document is checked against it.
#[must_use]
pub fn routes() -> Vec<(&'static str, Reach, MethodRouter<AppState>)> {
    use Reach::{Credentials, Public};
    vec![
        ("/v1/auth/login", Public, post(login)),
        ("/v1/auth/set-password", Public, post(signup::set_password)),
        ("/v1/plans", Public, get(signup::plans)),
        ("/v1/signup", Public, post(signup::request)),
        ("/v1/signup/verify", Public, get(signup::verify)),
        // Stripe signs its webhooks with the endpoint's secret: no caller credentials.
        ("/v1/stripe/webhook", Public, post(signup::stripe_webhook)),
        ("/v1/recordings/{key}", Public, get(download)),
        ("/v1/openapi.json", Credentials, get(openapi::serve)),
        ("/v1/me", Credentials, get(keys::me)),
        ("/v1/api-keys", Credentials, get(keys::list).post(keys::create)),
        ("/v1/api-keys/{id}", Credentials, delete(keys::revoke)),
        ("/v1/users", Credentials, get(users::list).post(users::create)),
        ("/v1/users/{id}", Credentials, patch(users::update).delete(users::remove)),
        ("/v1/numbers", Credentials, get(numbers::list).post(numbers::assign)),
        ("/v1/numbers/{number}", Credentials, delete(numbers::release)),
        (
            "/v1/settings/twilio",
            Credentials,
            get(settings::read_twilio).put(settings::set_twilio).delete(settings::remove_twilio),
        ),
        ("/v1/agents", Credentials, get(agents::list).post(agents::create)),
        ("/v1/agents/{id}", Credentials, get(agents::read).put(agents::update).delete(agents::remove)),
        ("/v1/agents/{id}/knowledge", Credentials, post(agents::upload_knowledge)),
        ("/v1/agents/{id}/media-tokens", Credentials, post(agents::media_token)),
        ("/v1/agents/{id}/tests", Credentials, post(agent_tests::start)),
        ("/v1/agents/{id}/tests/{run}", Credentials, get(agent_tests::read)),
        ("/v1/calls", Credentials, get(calls::list).post(calls::place)),
        ("/v1/calls/{id}", Credentials, get(calls::read)),
        ("/v1/calls/{id}/recording", Credentials, get(calls::recording_url)),
        ("/v1/billing/usage", Credentials, get(billing::usage)),
        ("/v1/campaigns", Credentials, get(campaigns::list).post(campaigns::create)),
        ("/v1/campaigns/{id}", Credentials, get(campaigns::read)),
        ("/v1/campaigns/{id}/numbers", Credentials, post(campaigns::add_numbers)),
        ("/v1/campaigns/{id}/pause", Credentials, post(campaigns::pause)),
        ("/v1/campaigns/{id}/resume", Credentials, post(campaigns::resume)),
        ("/v1/campaigns/{id}/cancel", Credentials, post(campaigns::cancel)),
        ("/v1/analytics/calls", Credentials, get(analytics::calls)),
        ("/v1/analytics/sentiment", Credentials, get(analytics::sentiment)),
        ("/v1/analytics/categories", Credentials, get(analytics::categories)),
        ("/v1/analytics/top-phrases", Credentials, get(analytics::top_phrases)),
        ("/v1/livekit/dispatch", Credentials, post(livekit::dispatch)),
        // LiveKit signs its webhooks with the project's key: no caller credentials.
        ("/v1/livekit/webhook", Public, post(livekit::webhook)),
        ("/v1/livekit/token", Credentials, post(livekit::token)),
        ("/v1/whatsapp/apps", Credentials, get(whatsapp::list_apps).post(whatsapp::add_app)),
        ("/v1/whatsapp/apps/{id}", Credentials, delete(whatsapp::remove_app)),
        ("/v1/whatsapp/apps/{id}/numbers/{phone_number_id}", Credentials, put(whatsapp::route_number)),
        // Meta signs each app's webhooks with that app's secret: no caller credentials.
        ("/v1/whatsapp/{app}/webhook", Public, get(whatsapp::verify).post(whatsapp::notify)),
        ("/v1/conversations", Credentials, get(conversations::list)),
        ("/v1/conversations/events", Credentials, get(conversations::events)),
        ("/v1/conversations/{id}", Credentials, get(conversations::read)),
        ("/v1/conversations/{id}/claim", Credentials, post(conversations::claim)),
        ("/v1/conversations/{id}/messages", Credentials, post(conversations::reply)),
        ("/v1/conversations/{id}/hand-back", Credentials, post(conversations::hand_back)),
        ("/v1/conversations/{id}/close", Credentials, post(conversations::close)),
    ]
}

/// The control API and the dashboard page. `limit` bounds each client
/// network's requests to the public routes.
pub fn router(limit: Option<Arc<voxgate_calls::limit::PublicLimit>>) -> Router<AppState> {
    let (mut public, mut private) = (Router::new(), Router::new());
    for (path, reach, handlers) in routes() {
        match reach {
            Reach::Public => public = public.route(path, handlers),
            Reach::Credentials => private = private.route(path, handlers),
        }
    }
    let public = public
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/app.js", get(crate::dashboard::script))
        .route_layer(axum::middleware::from_fn_with_state(limit, voxgate_calls::limit::rate_limited));
    private.merge(public).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
    }

    async fn body(json: &str) -> Result<Named, ApiError> {
        let request = Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(json.to_owned()))
            .expect("a request");
        ApiJson::<Named>::from_request(request, &()).await.map(|ApiJson(v)| v)
    }

    fn status(e: &ApiError) -> Option<StatusCode> {
        match e {
            ApiError::Request { status, .. } => Some(*status),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_body_is_a_json_object_and_nothing_else() {
        assert_eq!(body(r#"{"name": "a key"}"#).await.ok().map(|n| n.name), Some("a key".into()));
        // Serde reads a struct from an array of its fields; the schema does not.
        let array = body(r#"["__proto__"]"#).await.expect_err("an array is refused");
        assert_eq!(status(&array), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let missing = body("{}").await.expect_err("a missing field is refused");
        assert_eq!(status(&missing), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let unknown = body(r#"{"name": "k", "admin": true}"#).await.expect_err("an unknown field is refused");
        assert_eq!(status(&unknown), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let syntax = body("{").await.expect_err("bad JSON is refused");
        assert_eq!(status(&syntax), Some(StatusCode::BAD_REQUEST));
    }
}
