//! The tenant's users (admins only): who may log in, and as what. A role
//! change or a removal ends the user's tokens at once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson};
use crate::agent::spec::SpecError;
use crate::api::AppState;
use crate::auth::{self, Caller, Role};

/// A user (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
}

impl From<crate::store::UserRow> for User {
    fn from(u: crate::store::UserRow) -> Self {
        Self { role: Role::parse(&u.role), id: u.id, email: u.email }
    }
}

/// The tenant's users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    pub role: Role,
}

/// `PATCH /v1/users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

fn refuse(field: &str, reason: &str) -> ApiError {
    SpecError { field: field.into(), reason: reason.into() }.into()
}

/// Lists the tenant's users.
#[utoipa::path(get, path = "/v1/users", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<UserList>, ApiError> {
    let users = state.control.store.users(&caller.tenant_id).await?;
    Ok(Json(UserList { users: users.into_iter().map(User::from).collect() }))
}

/// Adds a user to the tenant.
#[utoipa::path(post, path = "/v1/users", tag = "auth", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let email = req.email.trim();
    if !email.contains('@') || email.len() > 320 || email.contains(char::is_whitespace) {
        return Err(refuse("email", "an email address"));
    }
    if req.password.chars().count() < 10 || req.password.len() > 1024 {
        return Err(refuse("password", "10 to 1024 characters"));
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ApiError::Unavailable("could not hash the password".into()))?;
    let store = &state.control.store;
    let id = store.create_user(&caller.tenant_id, email, &hash, req.role.as_str()).await?;
    tracing::info!(user = %id, by = %caller.subject, role = req.role.as_str(), "user added");
    Ok((StatusCode::CREATED, Json(User { id, email: email.to_lowercase(), role: req.role })))
}

/// Changes a user's role; the tokens it holds stop working.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "auth", security(("bearer" = [])), request_body = RoleChange,
    params(("id" = String, Path)), responses((status = 200, body = User)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RoleChange>,
) -> Result<Json<User>, ApiError> {
    let store = &state.control.store;
    if !store.set_user_role(&caller.tenant_id, &id, req.role.as_str()).await? {
        return Err(ApiError::NotFound("user"));
    }
    tracing::info!(user = %id, by = %caller.subject, role = req.role.as_str(), "role changed");
    let user = store.user(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("user"))?;
    Ok(Json(user.into()))
}

/// Removes a user; its tokens stop working.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.control.store.delete_user(&caller.tenant_id, &id).await? {
        tracing::info!(user = %id, by = %caller.subject, "user removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("user"))
    }
}
