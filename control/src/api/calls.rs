//! Calls: place an outbound call, list and read finished ones, and fetch
//! their recordings by signed link.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiQuery};
use crate::api::AppState;
use crate::auth::Caller;
use crate::recordings::{DEFAULT_TTL_S, SignedUrl};
use crate::store::{CallFilter, CallRow, now_ms};
use voxgate_calls::dial::{DialError, OutboundStatus};

/// `POST /v1/calls`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceCall {
    /// A `sip:` URI, or a number dialled through the trunk.
    #[schema(min_length = 1, max_length = 256)]
    pub to: String,
    /// Give up when nobody answers within this many seconds (1 to 300).
    #[schema(minimum = 1, maximum = 300)]
    pub ring_timeout_s: Option<u32>,
    /// The agent that talks (one of the tenant's); none: the configured agent.
    pub agent: Option<String>,
    /// Answering-machine detection for this call; none: the agent's setting.
    pub answering_machine: Option<crate::agent::answering::AnsweringMachineSpec>,
}

/// Dials a number or SIP URI through the trunk; follow it with `GET /v1/calls/{id}`.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", security(("bearer" = [])), request_body = PlaceCall,
    responses((status = 201, description = "Dialling", body = Object), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 402, description = "The tenant's plan takes no calls now", body = super::ErrorBody),
        (status = 403, description = "Not the trunk's nor an allowed host", body = super::ErrorBody),
        (status = 429, description = "The tenant is at a dial limit", body = super::ErrorBody),
        (status = 502, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn place(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PlaceCall>,
) -> Result<Response, ApiError> {
    let Some(dialer) = state.dialer else {
        return Err(ApiError::Unavailable("SIP is off (sip.enabled = false)".into()));
    };
    if req.ring_timeout_s.is_some_and(|s| !(1..=300).contains(&s)) {
        return Err(crate::agent::spec::SpecError {
            field: "ring_timeout_s".into(),
            reason: "must be 1 to 300".into(),
        }
        .into());
    }
    if let Some(a) = &req.answering_machine {
        a.validate("answering_machine")?;
    }
    let ring = req.ring_timeout_s.map(|s| std::time::Duration::from_secs(u64::from(s)));
    let mut agent = match req.agent.as_deref().filter(|a| !a.is_empty()) {
        // Only the tenant's own agents; another tenant's is as unknown as a missing one.
        Some(id) => match state.control.store.agent(&caller.tenant_id, id).await? {
            Some(_) => state.agents.for_call(id).await?,
            None => return Err(ApiError::NotFound("agent")),
        },
        None => state.agents.configured().call.clone(),
    };
    // A suspended plan, an ended trial or a month's minutes used: payment first.
    if let Some(closed) = agent.plan.closed {
        return Err(ApiError::PaymentRequired(closed.text().to_owned()));
    }
    if let Some(a) = &req.answering_machine {
        agent.answering_machine = a.to_session()?;
    }
    match dialer.dial(&caller.tenant_id, agent, &req.to, ring, None).await {
        Ok(status) => Ok((StatusCode::CREATED, Json(status)).into_response()),
        Err(e @ DialError::BadTarget(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(e @ DialError::Unreachable(_)) => {
            Err(ApiError::Request { status: StatusCode::BAD_GATEWAY, message: e.to_string() })
        }
        Err(e @ DialError::NoMedia(_)) => Err(ApiError::Unavailable(e.to_string())),
        Err(DialError::NotAllowed(why)) => {
            Err(ApiError::Request { status: StatusCode::FORBIDDEN, message: format!("not allowed: {why}") })
        }
        Err(DialError::Limit(why)) => {
            Err(ApiError::Request { status: StatusCode::TOO_MANY_REQUESTS, message: why })
        }
    }
}

/// `GET /v1/calls` filters. Times are Unix milliseconds.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub agent: Option<String>,
    pub campaign: Option<String>,
    /// `sip`, `webrtc`, `twilio`, `websocket`, `chat` or `console`.
    pub channel: Option<String>,
    /// How it ended, e.g. `caller_hung_up`, `agent_ended`, `no_media`; `in_progress` while it
    /// runs, `interrupted` if the server stopped (crashed) during it.
    pub status: Option<String>,
    /// Started at or after (Unix ms).
    pub from: Option<i64>,
    /// Started before (Unix ms).
    pub to: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// A call in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallSummary {
    pub id: String,
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    pub channel: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub status: String,
    pub caller: Option<String>,
    pub callee: Option<String>,
    /// The carrier's id of the call: the SIP Call-ID, Twilio's `callSid`
    /// (an attribute: `id` is the server's).
    pub external_id: Option<String>,
    /// The LiveKit room the call served (`POST /v1/livekit/dispatch`).
    pub room: Option<String>,
    /// Unix ms.
    pub started_at: i64,
    pub ended_at: i64,
    pub duration_ms: i64,
    /// Whether there is a recording (`GET /v1/calls/{id}/recording`).
    pub recording: bool,
}

impl From<&CallRow> for CallSummary {
    fn from(c: &CallRow) -> Self {
        Self {
            id: c.id.clone(),
            agent_id: c.agent_id.clone(),
            campaign_id: c.campaign_id.clone(),
            channel: c.channel.clone(),
            direction: c.direction.clone(),
            status: c.status.clone(),
            caller: c.caller.clone(),
            callee: c.callee.clone(),
            external_id: c.external_id.clone(),
            room: c.room.clone(),
            started_at: c.started_at,
            ended_at: c.ended_at,
            duration_ms: c.duration_ms,
            recording: c.recording.is_some(),
        }
    }
}

/// A page of calls, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    pub calls: Vec<CallSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn encode_cursor((at, id): &(i64, String)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let (at, id) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Lists the tenant's finished calls and chats, newest first.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = CallList), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<CallList>, ApiError> {
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            Some(decode_cursor(c).ok_or_else(|| ApiError::BadRequest("cursor is not one we gave".into()))?)
        }
    };
    if q.limit.is_some_and(|l| !(1..=200).contains(&l)) {
        return Err(ApiError::BadRequest("limit must be 1 to 200".into()));
    }
    let filter = CallFilter {
        agent_id: q.agent,
        campaign_id: q.campaign,
        channel: q.channel,
        status: q.status,
        from: q.from,
        to: q.to,
        after,
        limit: q.limit.unwrap_or(50),
    };
    let page = state.control.store.calls(&caller.tenant_id, &filter).await?;
    Ok(Json(CallList {
        calls: page.calls.iter().map(CallSummary::from).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

/// A call: its summary, transcript (`transcript`: speaker, text, whether
/// it was interrupted), events, per-turn latency (`latencies`), provider
/// usage (`usage`), analytics (null until analysed: intent, summary,
/// category, justification, quote, sentiment, turn_sentiments, source) and
/// what ran after it (`post_call`: jobs, emails, webhook deliveries). An outbound call also has `dial`, its
/// dialling progress (`dial.status`: dialing, ringing, answered, then
/// completed, transferred, busy, no_answer or failed; `dial.amd` once
/// answering-machine detection has decided); until it ends, that is all
/// there is. With detection on, `amd` says who answered: `result` (human,
/// machine or unknown), `reason`, `decided_ms` after the answer,
/// `greeting_ms`, and the `words`, `phrase` or `beep_hz` heard.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let dialled: Option<OutboundStatus> =
        state.dialer.as_ref().and_then(|d| d.status(&id)).filter(|s| s.tenant_id == caller.tenant_id);
    let Some(row) = state.control.store.call(&caller.tenant_id, &id).await? else {
        return match dialled {
            Some(d) => {
                Ok(Json(serde_json::json!({ "id": d.id, "status": d.status, "dial": d })).into_response())
            }
            None => Err(ApiError::NotFound("call")),
        };
    };
    let mut out = match serde_json::from_str::<serde_json::Value>(&row.detail) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let summary = serde_json::to_value(CallSummary::from(&row)).unwrap_or_default();
    if let serde_json::Value::Object(s) = summary {
        out.extend(s);
    }
    // Who answered a call we placed, from its log (it outlives the dialler's memory).
    let amd = out
        .get("events")
        .and_then(|e| e.as_array())
        .and_then(|events| events.iter().find(|e| e["kind"] == "answering_machine").cloned());
    if let Some(mut amd) = amd {
        if let Some(m) = amd.as_object_mut() {
            m.remove("kind");
            m.remove("at_ms");
        }
        out.insert("amd".into(), amd);
    }
    // What the dialler knew (the far end's SIP status, who hung up) stays with an outbound call.
    if let Some(d) = dialled {
        out.insert("dial".into(), serde_json::to_value(d).unwrap_or_default());
    }
    let store = &state.control.store;
    let analytics = store.analytics(&row.id).await?.and_then(|a| serde_json::from_str(&a).ok());
    out.insert("analytics".into(), analytics.unwrap_or(serde_json::Value::Null));
    out.insert("post_call".into(), post_call(store, &caller.tenant_id, &row.id).await?);
    Ok(Json(serde_json::Value::Object(out)).into_response())
}

/// What ran after the call: its jobs, email attempts and webhook deliveries.
async fn post_call(
    store: &crate::store::Store,
    tenant: &str,
    id: &str,
) -> Result<serde_json::Value, ApiError> {
    let jobs: Vec<serde_json::Value> = store
        .call_jobs(tenant, id)
        .await?
        .into_iter()
        .map(|j| {
            serde_json::json!({"key": j.key, "kind": j.kind, "status": j.status, "attempts": j.attempts,
                "last_error": j.last_error, "updated_at": j.updated_at})
        })
        .collect();
    let emails: Vec<serde_json::Value> = store
        .email_log(tenant, id)
        .await?
        .into_iter()
        .map(|e| {
            serde_json::json!({"recipient": e.recipient, "template": e.template, "status": e.status,
                "error": e.error, "created_at": e.created_at, "sent_at": e.sent_at})
        })
        .collect();
    let webhooks: Vec<serde_json::Value> = store
        .deliveries(tenant, id)
        .await?
        .into_iter()
        .map(|d| {
            serde_json::json!({"event": d.event, "url": d.url, "attempt": d.attempt, "status_code": d.status_code,
                "ok": d.ok, "error": d.error, "created_at": d.created_at})
        })
        .collect();
    Ok(serde_json::json!({ "jobs": jobs, "emails": emails, "webhooks": webhooks }))
}

/// `GET /v1/calls/{id}/recording`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// How long the link works, in seconds (60 to 604800); default 3600.
    #[param(minimum = 60, maximum = 604_800)]
    pub ttl_s: Option<u64>,
}

/// A link to the call's recording (stereo WAV: caller left, agent right)
/// that works without credentials until it expires.
#[utoipa::path(get, path = "/v1/calls/{id}/recording", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path), LinkQuery),
    responses((status = 200, body = SignedUrl), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn recording_url(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
    headers: HeaderMap,
) -> Result<Json<SignedUrl>, ApiError> {
    let ttl = q.ttl_s.unwrap_or(DEFAULT_TTL_S);
    if !(60..=604_800).contains(&ttl) {
        return Err(ApiError::BadRequest("ttl_s must be 60 to 604800".into()));
    }
    let row = state.control.store.call(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("call"))?;
    let key = row.recording.ok_or(ApiError::NotFound("recording"))?;
    let base = base_url(&state, &headers);
    let now_s = u64::try_from(now_ms() / 1000).unwrap_or_default();
    match state.ledger.recordings.signed_url(&base, &key, now_s, ttl).await {
        Ok(link) => Ok(Json(link)),
        Err(e) => {
            tracing::error!(call_id = %id, error = %e, "cannot link the recording");
            Err(ApiError::Unavailable("the recording store is unavailable".into()))
        }
    }
}

/// How clients reach this server: `http.public_url`, else the request's `Host`.
pub(super) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let configured = state.config.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .map_or_else(|| state.config.listen.to_string(), str::to_owned);
    format!("http://{host}")
}

/// A signed recording link's query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Signed {
    pub expires: u64,
    pub sig: String,
}

/// Serves a recording to whoever holds a valid, unexpired link.
#[utoipa::path(get, path = "/v1/recordings/{key}", tag = "calls", params(("key" = String, Path), Signed),
    responses((status = 200, description = "audio/wav", content_type = "audio/wav", body = Vec<u8>),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<Signed>,
) -> Result<Response, ApiError> {
    let now_s = u64::try_from(now_ms() / 1000).unwrap_or_default();
    let Some(path) = state.ledger.recordings.check(&key, q.expires, &q.sig, now_s) else {
        return Err(ApiError::Request {
            status: StatusCode::FORBIDDEN,
            message: "invalid or expired link".into(),
        });
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response()),
        Err(_) => Err(ApiError::NotFound("recording")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = (1_700_000_000_123, "out-1@voxgate".to_owned());
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:y")), None);
    }
}
