//! Who is calling the control API: a login token, an API key, or the
//! operator's configured key, checked before any handler runs; a request
//! whose credentials may not do what its route does is refused (403).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::{API_KEY_PREFIX, Caller, Need, Role, Scope, Via, key_hash, need};

/// Who this is, before the route is checked.
async fn identify(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let Some(given) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return Err(ApiError::Unauthorized("send Authorization: Bearer <token or API key>"));
    };
    let control = &state.control;
    if given.starts_with(API_KEY_PREFIX) {
        return match control.store.api_key(&key_hash(given)).await? {
            Some(key) => Ok(Caller {
                tenant_id: key.tenant_id,
                subject: key.id,
                via: Via::ApiKey,
                role: None,
                scope: Some(Scope::parse(&key.scope)),
                operator: false,
            }),
            None => Err(ApiError::Unauthorized("unknown, expired or revoked API key")),
        };
    }
    // The configured key (http.api_key) is the operator's, in the default tenant.
    let configured = state.api_key.expose();
    if !configured.is_empty() && voxgate_calls::tokens::same_secret(given, configured) {
        return Ok(Caller {
            tenant_id: control.default_tenant.clone(),
            subject: "http.api_key".into(),
            via: Via::ApiKey,
            role: None,
            scope: Some(Scope::Write),
            operator: true,
        });
    }
    let Some(claims) = control.tokens.check(given) else {
        return Err(ApiError::Unauthorized("invalid or expired token"));
    };
    // A removed user's tokens die with it, and a changed role ends the old ones.
    let user = control.store.user(&claims.tid, &claims.sub).await?;
    let Some(user) = user.filter(|u| u.token_version == claims.ver) else {
        return Err(ApiError::Unauthorized("invalid or expired token"));
    };
    let role = Role::parse(&user.role);
    Ok(Caller {
        operator: role == Role::Admin && user.tenant_id == control.default_tenant,
        tenant_id: user.tenant_id,
        subject: user.id,
        via: Via::Token,
        role: Some(role),
        scope: None,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = identify(parts, state).await?;
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        let need = need(&parts.method, &route);
        if caller.may(need) {
            Ok(caller)
        } else {
            Err(ApiError::Forbidden(match need {
                Need::Read | Need::PlaceCalls => "these credentials may not place calls",
                Need::Write => "these credentials may only read",
                Need::Admin => "only an admin manages users and API keys",
                Need::Operator => "only the operator gives out phone numbers",
            }))
        }
    }
}
