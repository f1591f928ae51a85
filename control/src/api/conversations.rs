//! The desk's API: WhatsApp conversations, their messages, and a person of
//! the team taking one over from its agent ([`crate::whatsapp`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::agent::spec::SpecError;
use crate::auth::Caller;
use crate::store::{ConversationRow, ConversationStatus, MessageRow};

/// A conversation as the desk sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Conversation {
    /// Its call record's id too (`/v1/calls/{id}`).
    pub id: String,
    pub agent_id: String,
    pub phone_number_id: String,
    /// The contact's WhatsApp number.
    pub contact: String,
    pub contact_name: Option<String>,
    pub status: ConversationStatus,
    /// Who claimed it.
    pub claimed_by: Option<String>,
    /// Unix milliseconds.
    pub opened_at: i64,
    pub last_at: i64,
    /// Until when (Unix ms) free text may be sent: 24 hours after the contact last wrote.
    pub window_ends_at: i64,
    pub closed_at: Option<i64>,
}

impl From<ConversationRow> for Conversation {
    fn from(c: ConversationRow) -> Self {
        Self {
            id: c.id,
            agent_id: c.agent_id,
            phone_number_id: c.phone_number_id,
            contact: c.contact,
            contact_name: c.contact_name,
            status: c.status,
            claimed_by: c.claimed_by,
            opened_at: c.opened_at,
            last_at: c.last_at,
            window_ends_at: c.last_inbound_at + 24 * 3600 * 1000,
            closed_at: c.closed_at,
        }
    }
}

/// A conversation and its messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub messages: Vec<MessageRow>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `ai`, `waiting_for_human`, `human` or `closed`; none: every open one.
    pub status: Option<ConversationStatus>,
    /// At most this many, latest first (1 to 200; 50).
    pub limit: Option<i64>,
}

/// `POST /v1/conversations/{id}/messages`: free text, or an approved template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// 1 to 4096 characters.
    pub text: Option<String>,
    pub template: Option<Template>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    /// e.g. `en_US`.
    pub language: String,
}

/// The tenant's conversations.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Vec<Conversation>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Conversation>>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = state.control.store.conversations(&caller.tenant_id, q.status, limit).await?;
    Ok(Json(rows.into_iter().map(Conversation::from).collect()))
}

async fn detail(state: &AppState, c: ConversationRow) -> Result<ConversationDetail, ApiError> {
    let messages = state.control.store.messages(&c.id).await?;
    Ok(ConversationDetail { conversation: c.into(), messages })
}

/// One of the tenant's conversations, with its messages.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ConversationDetail), (status = 404, body = super::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let c = state
        .control
        .store
        .conversation(&caller.tenant_id, &id)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    Ok(Json(detail(&state, c).await?))
}

/// Takes the conversation over: its agent stops answering it.
#[utoipa::path(post, path = "/v1/conversations/{id}/claim", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Conversation), (status = 404, body = super::ErrorBody),
        (status = 409, description = "Closed, or someone else's", body = super::ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.whatsapp.claim(&caller.tenant_id, &id, &caller.subject).await?.into()))
}

/// Writes to the contact of a conversation the caller claimed: free text
/// within 24 hours of the contact's last message, or an approved template.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = Reply,
    responses((status = 201, body = Vec<MessageRow>), (status = 404, body = super::ErrorBody),
        (status = 409, description = "Not claimed by the caller, or outside the 24-hour window (send a template)", body = super::ErrorBody),
        (status = 422, body = super::ErrorBody), (status = 502, description = "Meta refused it", body = super::ErrorBody)))]
pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Reply>,
) -> Result<(StatusCode, Json<Vec<MessageRow>>), ApiError> {
    let invalid =
        |field: &str, reason: &str| ApiError::from(SpecError { field: field.into(), reason: reason.into() });
    let sent = match (req.text, req.template) {
        (Some(text), None) => {
            let n = text.trim().chars().count();
            if !(1..=crate::whatsapp::split::MAX_CHARS).contains(&n) {
                return Err(invalid("text", "1 to 4096 characters"));
            }
            state.whatsapp.reply(&caller.tenant_id, &id, &caller.subject, text.trim()).await?
        }
        (None, Some(t)) => {
            let name_ok = (1..=512).contains(&t.name.len())
                && t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                return Err(invalid("template.name", "1 to 512 of a-z, 0-9 and _"));
            }
            let language_ok = (2..=15).contains(&t.language.len())
                && t.language.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !language_ok {
                return Err(invalid("template.language", "a language code such as en_US"));
            }
            vec![state.whatsapp.send_template(&caller.tenant_id, &id, (&t.name, &t.language)).await?]
        }
        _ => return Err(invalid("text", "give text or a template, not both")),
    };
    Ok((StatusCode::CREATED, Json(sent)))
}

/// Gives the conversation back to its agent.
#[utoipa::path(post, path = "/v1/conversations/{id}/hand-back", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Conversation), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn hand_back(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.whatsapp.hand_back(&caller.tenant_id, &id).await?.into()))
}

/// Ends the conversation: its record and post-call work follow.
#[utoipa::path(post, path = "/v1/conversations/{id}/close", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Conversation), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)))]
pub async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.whatsapp.close_now(&caller.tenant_id, &id).await?.into()))
}

/// The desk's live feed: a server-sent event (`data: {"conversation_id",
/// "status", "kind"}`) whenever one of the tenant's conversations gets a
/// message (`kind: "message"`) or changes hands (`kind: "status"`).
#[utoipa::path(get, path = "/v1/conversations/events", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> axum::response::sse::Sse<
    impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let feed = state.whatsapp.feed.subscribe();
    let stream = futures::stream::unfold((feed, caller.tenant_id), |(mut feed, tenant)| async move {
        loop {
            match feed.recv().await {
                Ok(e) if e.tenant_id == tenant => {
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    return Some((Ok(Event::default().data(data)), (feed, tenant)));
                }
                // Another tenant's, or some were missed (a slow reader): the desk reloads on the next.
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
