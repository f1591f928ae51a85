//! Phone numbers: the operator gives them to tenants; a tenant lists its
//! own, and its agents may route only those.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson};
use crate::agent::spec::SpecError;
use crate::api::AppState;
use crate::auth::Caller;
use crate::store::NumberAssignment;

/// Numbers and their tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberList {
    pub numbers: Vec<NumberAssignment>,
}

/// `POST /v1/numbers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// As callers dial it: 1 to 32 of letters, digits and `+ * # . _ -`.
    pub number: String,
    /// The tenant it goes to.
    pub tenant_id: String,
}

/// The caller's tenant's numbers (the operator's: every tenant's).
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", security(("bearer" = [])),
    responses((status = 200, body = NumberList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<NumberList>, ApiError> {
    let tenant = (!caller.operator).then_some(caller.tenant_id.as_str());
    Ok(Json(NumberList { numbers: state.control.store.assigned_numbers(tenant).await? }))
}

/// Gives a number to a tenant (the operator only). A number has one
/// tenant: another's is a 409 until it is released.
#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", security(("bearer" = [])), request_body = Assign,
    responses((status = 201, body = NumberAssignment), (status = 409, body = super::ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Assign>,
) -> Result<(StatusCode, Json<NumberAssignment>), ApiError> {
    let refuse = |field: &str, reason: String| ApiError::from(SpecError { field: field.into(), reason });
    crate::agent::spec::check_number(&req.number).map_err(|reason| refuse("number", reason.into()))?;
    let store = &state.control.store;
    if !store.tenant_exists(&req.tenant_id).await? {
        return Err(refuse("tenant_id", "no such tenant".into()));
    }
    // The configured agent's numbers stay the default tenant's.
    let configured = state.config.numbers.contains(&req.number);
    if configured && req.tenant_id != state.control.default_tenant {
        return Err(ApiError::Conflict(format!(
            "number {} is the configured agent's (sip.numbers), reserved for the default tenant",
            req.number
        )));
    }
    store.assign_number(&req.number, &req.tenant_id).await?;
    let shown = voxgate_calls::redact::number(Some(&req.number), state.config.show_pii);
    tracing::info!(number = %shown, tenant = %req.tenant_id, by = %caller.subject, "number assigned");
    let assigned = store.assigned_numbers(Some(&req.tenant_id)).await?;
    let row = assigned.into_iter().find(|n| n.number == req.number).ok_or(ApiError::NotFound("number"))?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Takes a number back (the operator only); a 409 while an agent routes it.
#[utoipa::path(delete, path = "/v1/numbers/{number}", tag = "numbers", security(("bearer" = [])),
    params(("number" = String, Path)), responses((status = 204), (status = 409, body = super::ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.control.store.release_number(&number).await? {
        let shown = voxgate_calls::redact::number(Some(&number), state.config.show_pii);
        tracing::info!(number = %shown, by = %caller.subject, "number released");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("number"))
    }
}
