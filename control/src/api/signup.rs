//! Self-serve sign-up: the plans on offer, `POST /v1/signup`, the mailed
//! verification link, Stripe's webhook, and the link that sets the first
//! admin's password. All public: each proves itself by a mailed token or
//! Stripe's signature ([`crate::signup`]).

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::calls::base_url;
use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::config::PlanSettings;
use crate::signup::{SignupError, Verified, WebhookError};

impl From<SignupError> for ApiError {
    fn from(e: SignupError) -> Self {
        match e {
            SignupError::Closed => Self::NotFound("sign-up"),
            SignupError::Invalid { field, reason } => {
                Self::Invalid(crate::agent::spec::SpecError { field: field.into(), reason })
            }
            SignupError::TooMany => Self::Request {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "too many sign-ups; try again later".into(),
            },
            SignupError::BadLink => Self::NotFound("link (unknown, used or expired)"),
            SignupError::Unavailable(message) => Self::Unavailable(message),
            SignupError::Store(e) => e.into(),
        }
    }
}

/// The plans on offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plans {
    pub plans: Vec<PlanSettings>,
}

/// The plans a business may sign up for, with their limits (0: none).
#[utoipa::path(get, path = "/v1/plans", tag = "signup", responses((status = 200, body = Plans)))]
pub async fn plans(State(state): State<AppState>) -> Json<Plans> {
    Json(Plans { plans: state.signups.plans().to_vec() })
}

/// `POST /v1/signup`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// The first admin's email: the verification link goes there.
    pub email: String,
    /// The business's name (1 to 100 characters): its tenant's name.
    pub company: String,
    /// One of `GET /v1/plans`.
    pub plan: String,
}

/// What a sign-up answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupAccepted {
    /// `verification_sent`: open the mailed link to go on.
    pub status: &'static str,
}

/// Asks to sign a business up: a link that verifies the email is mailed;
/// opening it leads to payment (or, for a free plan, straight to the
/// account). Rate limited per address and per email.
#[utoipa::path(post, path = "/v1/signup", tag = "signup", request_body = SignupRequest,
    responses((status = 202, body = SignupAccepted), (status = 404, description = "Sign-up is off", body = super::ErrorBody),
        (status = 429, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<(StatusCode, Json<SignupAccepted>), ApiError> {
    let base = base_url(&state, &headers);
    state.signups.request(&req.email, &req.company, &req.plan, peer.ip(), &base).await?;
    Ok((StatusCode::ACCEPTED, Json(SignupAccepted { status: "verification_sent" })))
}

/// A mailed link's token.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkToken {
    pub token: String,
}

/// The mailed verification link: the email is proven, and the browser is
/// sent on (303) to Stripe Checkout to pay, or, for a free plan, to the
/// dashboard while the set-password link is mailed.
#[utoipa::path(get, path = "/v1/signup/verify", tag = "signup", params(LinkToken),
    responses((status = 303, description = "To Stripe Checkout, or to the dashboard"),
        (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LinkToken>,
) -> Result<Response, ApiError> {
    let base = base_url(&state, &headers);
    let to = match state.signups.verify(&q.token, &base).await? {
        Verified::Checkout(url) => url,
        Verified::Ready => format!("{base}/dashboard?signup=ready"),
    };
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

/// `POST /v1/auth/set-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The mailed link's token.
    pub token: String,
    /// 10 to 1024 characters.
    pub password: String,
}

/// Sets a password through a mailed single-use link, ending the user's tokens.
#[utoipa::path(post, path = "/v1/auth/set-password", tag = "auth", request_body = SetPassword,
    responses((status = 204), (status = 404, description = "The link is unknown, used or expired", body = super::ErrorBody)))]
pub async fn set_password(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    state.signups.set_password(&req.token, req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stripe's events, signed with the endpoint's secret (`Stripe-Signature`):
/// `checkout.session.completed` makes the tenant, subscription changes and
/// failed payments change its plan or suspend it. Each event is handled
/// once; a bad or stale signature is 400 and changes nothing.
#[utoipa::path(post, path = "/v1/stripe/webhook", tag = "signup",
    request_body(content = String, content_type = "application/json"),
    responses((status = 200), (status = 400, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now_s = crate::store::now_ms() / 1000;
    let base = base_url(&state, &headers);
    match state.signups.webhook(signature, &body, now_s, &base).await {
        Ok(()) => Ok(StatusCode::OK),
        Err(WebhookError::Signature(e)) => {
            tracing::warn!(error = %e, "a Stripe webhook refused");
            Err(ApiError::BadRequest(format!("not signed by Stripe for this endpoint: {e}")))
        }
        Err(WebhookError::NotAnEvent(e)) => Err(ApiError::BadRequest(e)),
        Err(WebhookError::Failed(e)) => {
            Err(ApiError::Unavailable(format!("not handled; deliver again: {e}")))
        }
    }
}
