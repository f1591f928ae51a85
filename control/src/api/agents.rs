//! Agents: create, read, replace, delete, and upload knowledge documents.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiQuery};
use crate::agent::spec::{AgentSpec, DocFormat, KnowledgeDoc};
use crate::api::AppState;
use crate::auth::Caller;
use crate::store::{AgentRow, StoreError};

/// A stored agent: its definition (secrets shown as `********`) and when it changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agent {
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(flatten)]
    pub spec: AgentSpec,
}

/// The tenant's agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

fn spec_of(row: &AgentRow) -> Result<AgentSpec, ApiError> {
    serde_json::from_str(&row.spec)
        .map_err(|source| ApiError::Store(StoreError::Corrupt { what: "agent", source }))
}

fn shown(row: &AgentRow) -> Result<Agent, ApiError> {
    Ok(Agent {
        id: row.id.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        spec: spec_of(row)?.redacted(),
    })
}

fn to_json(spec: &AgentSpec) -> String {
    // A spec is plain data (strings, numbers, maps with string keys).
    serde_json::to_string(spec).expect("an agent spec serialises")
}

/// Creates an agent.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", security(("bearer" = [])), request_body = AgentSpec,
    responses((status = 201, body = Agent), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 402, description = "Past the tenant's plan (agents, knowledge), or it is suspended", body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(mut spec): ApiJson<AgentSpec>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    spec.validate()?;
    spec.name = spec.name.trim().to_owned();
    within_plan(&state, &caller, None, &spec).await?;
    let row = state
        .control
        .store
        .create_agent(&caller.tenant_id, &spec.name, &to_json(&spec), &spec.numbers)
        .await?;
    state.agents.invalidate(&row.id);
    tracing::info!(agent = %row.id, tenant = %caller.tenant_id, "agent created");
    Ok((StatusCode::CREATED, Json(shown(&row)?)))
}

/// Lists the tenant's agents, oldest first.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = AgentList), (status = 401, body = super::ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<AgentList>, ApiError> {
    let rows = state.control.store.agents(&caller.tenant_id).await?;
    Ok(Json(AgentList { agents: rows.iter().map(shown).collect::<Result<_, _>>()? }))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Agent), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    let row = state.control.store.agent(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("agent"))?;
    Ok(Json(shown(&row)?))
}

/// `POST /v1/agents/{id}/media-tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMediaToken {
    /// How long it works, in seconds (1 to 3600; default 900).
    #[schema(minimum = 1, maximum = 3600)]
    pub ttl_s: Option<u32>,
}

/// A media token: `?token=` on the media endpoints, or a Twilio
/// `<Parameter name="token">`, reaches this agent until it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Mints a short-lived media token for one of the tenant's agents, so a
/// front end or a telephony provider reaches it while the media endpoints
/// are closed (a media key set) or the agent is not public.
#[utoipa::path(post, path = "/v1/agents/{id}/media-tokens", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = NewMediaToken,
    responses((status = 201, body = MediaToken)))]
pub async fn media_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewMediaToken>,
) -> Result<(StatusCode, Json<MediaToken>), ApiError> {
    let ttl = req.ttl_s.unwrap_or(900);
    if !(1..=3600).contains(&ttl) {
        return Err(
            crate::agent::spec::SpecError { field: "ttl_s".into(), reason: "1 to 3600".into() }.into()
        );
    }
    // Only the tenant's own agents; another tenant's is as unknown as a missing one.
    state.control.store.agent(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("agent"))?;
    let (token, expires_at) =
        state.media_tokens.mint_for(&id, std::time::Duration::from_secs(u64::from(ttl)));
    Ok((StatusCode::CREATED, Json(MediaToken { token, expires_at })))
}

/// Replaces an agent's definition. Secrets sent back as `********` keep
/// their stored values while their URL's scheme, host and port stay the
/// same (else 422: send the secret again). Calls in progress finish with
/// the old definition.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = AgentSpec,
    responses((status = 200, body = Agent), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut spec): ApiJson<AgentSpec>,
) -> Result<Json<Agent>, ApiError> {
    let store = &state.control.store;
    let stored = store.agent(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("agent"))?;
    spec.keep_secrets(&spec_of(&stored)?)?;
    spec.validate()?;
    spec.name = spec.name.trim().to_owned();
    save(&state, &caller, &id, &spec).await
}

/// Refuses (402) what the tenant's plan does not allow: a new agent past
/// its agents, or knowledge grown past its bytes. Agent `id` (`None`: a new
/// one) would become `spec`.
async fn within_plan(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    spec: &AgentSpec,
) -> Result<(), ApiError> {
    let rows = state.control.store.agents(&caller.tenant_id).await?;
    let mut before = 0;
    let mut others = 0;
    for row in &rows {
        let bytes = spec_of(row)?.knowledge_bytes();
        before += bytes;
        if Some(row.id.as_str()) != id {
            others += bytes;
        }
    }
    let after = others + spec.knowledge_bytes();
    if id.is_some() && after <= before {
        return Ok(());
    }
    let agents = rows.len() + usize::from(id.is_none());
    let plans = state.agents.plans();
    Ok(plans.may_keep(&state.control.store, &caller.tenant_id, agents, after).await?)
}

async fn save(
    state: &AppState,
    caller: &Caller,
    id: &str,
    spec: &AgentSpec,
) -> Result<Json<Agent>, ApiError> {
    within_plan(state, caller, Some(id), spec).await?;
    let row = state
        .control
        .store
        .update_agent(&caller.tenant_id, id, &spec.name, &to_json(spec), &spec.numbers)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    // Calls from now on use the new definition; calls in progress keep theirs.
    state.agents.invalidate(id);
    tracing::info!(agent = %id, tenant = %caller.tenant_id, "agent updated");
    Ok(Json(shown(&row)?))
}

/// Deletes an agent and frees its numbers; its calls stay.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.control.store.delete_agent(&caller.tenant_id, &id).await? {
        state.agents.invalidate(&id);
        tracing::info!(agent = %id, tenant = %caller.tenant_id, "agent deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("agent"))
    }
}

/// `POST /v1/agents/{id}/knowledge?name=...`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// The document's name, e.g. `faq.md`; a document of that name is replaced.
    pub name: String,
}

/// Adds (or replaces, by name) a knowledge document: the request body is
/// the document, `text/plain` or `text/markdown` (UTF-8, at most 256 KiB).
#[utoipa::path(post, path = "/v1/agents/{id}/knowledge", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path), Upload),
    request_body(content = String, content_type = "text/markdown"),
    responses((status = 200, body = Agent), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 413, body = super::ErrorBody), (status = 415, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn upload_knowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<Upload>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Agent>, ApiError> {
    let store = &state.control.store;
    let stored = store.agent(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("agent"))?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let format = match media_type.as_str() {
        "text/markdown" | "text/x-markdown" => DocFormat::Markdown,
        "text/plain" if q.name.ends_with(".md") => DocFormat::Markdown,
        "text/plain" => DocFormat::Text,
        _ => {
            return Err(ApiError::Request {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "send the document as text/plain or text/markdown".into(),
            });
        }
    };
    let Ok(content) = String::from_utf8(body.to_vec()) else {
        return Err(ApiError::BadRequest("the document is not UTF-8 text".into()));
    };
    let mut spec = spec_of(&stored)?;
    let doc = KnowledgeDoc { name: q.name.trim().to_owned(), format, content };
    match spec.knowledge.iter_mut().find(|d| d.name == doc.name) {
        Some(existing) => *existing = doc,
        None => spec.knowledge.push(doc),
    }
    spec.validate()?;
    save(&state, &caller, &id, &spec).await
}
