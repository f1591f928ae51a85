//! Logging in, and the tenant's API keys.

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson};
use crate::api::AppState;
use crate::auth::{self, Caller};
use crate::store::ApiKeyRow;

/// `POST /v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

/// A login token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops working, Unix seconds.
    pub expires_at: u64,
    pub tenant_id: String,
    pub user_id: String,
}

/// Exchanges an email and password for a token. After five failures for
/// one account from one address, that pair waits (429, `Retry-After`),
/// twice as long after each further failure.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Session), (status = 401, body = super::ErrorBody), (status = 429, body = super::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    ApiJson(req): ApiJson<Login>,
) -> Result<Json<Session>, ApiError> {
    const REFUSED: ApiError = ApiError::Unauthorized("wrong email or password");
    if req.email.len() > 320 || req.password.len() > 1024 {
        return Err(REFUSED);
    }
    let control = &state.control;
    let now = std::time::Instant::now();
    if let Some(wait) = control.logins.wait(&req.email, peer.ip(), now) {
        return Err(ApiError::LoginBackoff(wait.as_secs().max(1)));
    }
    let user = control.store.user_by_email(&req.email).await?;
    // Check a hash even for an unknown email, so timing does not tell which emails exist.
    let hash = user.as_ref().map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&req.password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(u) if ok => {
            control.logins.succeeded(&req.email, peer.ip());
            let (token, expires_at) = control.tokens.issue(&u);
            tracing::info!(user = %u.id, tenant = %u.tenant_id, "logged in");
            Ok(Json(Session { token, expires_at, tenant_id: u.tenant_id, user_id: u.id }))
        }
        _ => {
            let wait = control.logins.failed(&req.email, peer.ip(), now);
            // The user's id when the account exists; never the password, nor an unknown email.
            let user = user.as_ref().map(|u| u.id.as_str());
            tracing::warn!(user, client = %peer.ip(), wait_s = wait.as_secs(), "login refused");
            Err(REFUSED)
        }
    }
}

/// An argon2id hash of a random password, checked when the email is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password(&auth::random_hex(16)).unwrap_or_default());

/// Who the credentials belong to.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Caller), (status = 401, body = super::ErrorBody)))]
pub async fn me(caller: Caller) -> Json<Caller> {
    Json(caller)
}

/// `POST /v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// What it may do: `read`, `calls:place` or `write` (the default).
    #[serde(default = "write")]
    pub scope: auth::Scope,
    /// When it stops working, Unix milliseconds (in the future); absent: never.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

const fn write() -> auth::Scope {
    auth::Scope::Write
}

/// A new API key: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: ApiKeyRow,
    /// Send as `Authorization: Bearer <key>`.
    pub key: String,
}

/// The tenant's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKeyRow>,
}

/// Makes an API key for the caller's tenant (admins only).
#[utoipa::path(post, path = "/v1/api-keys", tag = "auth", security(("bearer" = [])), request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let name = req.name.trim();
    // The length as sent (as the schema says); blank is refused too.
    if name.is_empty() || req.name.chars().count() > 100 {
        return Err(crate::agent::spec::SpecError {
            field: "name".into(),
            reason: "1 to 100 characters".into(),
        }
        .into());
    }
    if req.expires_at.is_some_and(|at| at <= crate::store::now_ms()) {
        return Err(crate::agent::spec::SpecError {
            field: "expires_at".into(),
            reason: "a time in the future, Unix milliseconds".into(),
        }
        .into());
    }
    let (key, hash) = auth::new_api_key();
    let new =
        crate::store::NewApiKey { name, scope: req.scope.as_str(), expires_at: req.expires_at, hash: &hash };
    let record = state.control.store.create_api_key(&caller.tenant_id, new).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { record, key })))
}

/// Lists the tenant's live API keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/api-keys", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = super::ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList { keys: state.control.store.api_keys(&caller.tenant_id).await? }))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.control.store.revoke_api_key(&caller.tenant_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("API key"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_is_a_real_argon2_hash() {
        assert!(argon2::password_hash::phc::PasswordHash::new(&super::DUMMY_HASH).is_ok());
        assert!(!crate::auth::verify_password("", &super::DUMMY_HASH));
    }
}
