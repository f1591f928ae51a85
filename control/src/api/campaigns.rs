//! `/v1/campaigns`: outbound campaigns (see [`crate::campaigns`]). Make
//! one with its numbers, add numbers (JSON or a CSV upload), follow each
//! number's status and attempts, pause, resume or cancel it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson};
use crate::agent::answering::AnsweringMachineSpec;
use crate::agent::spec::SpecError;
use crate::api::AppState;
use crate::auth::Caller;
use crate::campaigns::{RetryPolicy, Window};
use crate::store::{CampaignRow, NumberRow, new_id, now_ms};

/// Numbers one request may add.
const MAX_NUMBERS: usize = 10_000;

/// When a campaign may call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallWindow {
    /// Local time the window opens, `HH:MM`.
    #[schema(example = "09:00")]
    pub start: String,
    /// Local time it closes, `HH:MM`; before `start`: it runs past midnight.
    #[schema(example = "17:00")]
    pub end: String,
    /// IANA time zone, e.g. `Europe/London`.
    pub time_zone: String,
    /// ISO weekdays it is open on, 1 (Monday) to 7; default Monday to Friday.
    #[serde(default = "weekdays")]
    pub days: Vec<u8>,
}

fn weekdays() -> Vec<u8> {
    vec![1, 2, 3, 4, 5]
}

/// `POST /v1/campaigns`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1 to 100 characters.
    pub name: String,
    /// The agent that talks (default: the configured one).
    pub agent: Option<String>,
    /// Numbers (`+15551234`) or `sip:` URIs; more can be added later.
    #[serde(default)]
    pub numbers: Vec<String>,
    pub window: CallWindow,
    /// Calls at once, 1 to 50; default 1.
    pub max_concurrent: Option<u32>,
    /// Seconds a call may ring, 5 to 120; default 30.
    pub ring_timeout_s: Option<u32>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Answering machines on its calls; none: the agent's setting.
    pub answering_machine: Option<AnsweringMachineSpec>,
    /// Make it paused, to start with `resume`.
    #[serde(default)]
    pub paused: bool,
}

/// A campaign, its progress and (the first 1,000 of) its numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub agent_id: Option<String>,
    /// running, paused, cancelled, completed.
    pub status: String,
    pub window: CallWindow,
    pub max_concurrent: u32,
    pub ring_timeout_s: u32,
    pub retry: RetryPolicy,
    /// Its own answering-machine setting; none: the agent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answering_machine: Option<AnsweringMachineSpec>,
    /// Numbers by status (pending, dialing, completed, busy, no_answer, failed, cancelled).
    pub counts: std::collections::BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbers: Option<Vec<Number>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One number of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct Number {
    pub number: String,
    pub status: String,
    pub attempts: u32,
    /// When it is dialled next (pending numbers), Unix ms.
    pub next_attempt_at: i64,
    /// Its last call (`GET /v1/calls/{id}`).
    pub last_call_id: Option<String>,
    /// The last attempt's outcome, e.g. `busy`, `failed (403)`.
    pub last_result: Option<String>,
    pub updated_at: i64,
}

/// The campaigns, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
}

/// `POST /v1/campaigns/{id}/numbers` as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumbers {
    pub numbers: Vec<String>,
}

/// How many numbers were added (numbers it had already are skipped).
#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    pub added: u64,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
    SpecError { field: field.into(), reason: reason.into() }.into()
}

/// A number as dialled: `+` and digits (spaces, dashes, dots and brackets
/// dropped), or a `sip:` URI.
fn clean_number(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with("sip:") {
        return voxgate_sip_bridge::message::Uri::parse(raw).ok().map(|_| raw.to_owned());
    }
    let cleaned: String = raw.chars().filter(|c| !" -.()".contains(*c)).collect();
    let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
    let ok = (3..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    ok.then_some(cleaned)
}

fn clean_numbers(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_NUMBERS {
        return Err(invalid("numbers", format!("at most {MAX_NUMBERS} at a time")));
    }
    raw.iter()
        .enumerate()
        .map(|(i, n)| {
            clean_number(n).ok_or_else(|| invalid(format!("numbers[{i}]"), "not a phone number or sip: URI"))
        })
        .collect()
}

/// Numbers from a CSV file: the column named `number` or `phone`, else the
/// first; a first row that is not a number is a header.
fn numbers_from_csv(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(body);
    let mut column = 0;
    let mut numbers = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| ApiError::BadRequest(format!("CSV line {}: {e}", i + 1)))?;
        if i == 0 {
            if let Some(c) =
                record.iter().position(|f| ["number", "phone"].contains(&f.to_ascii_lowercase().as_str()))
            {
                column = c;
                continue;
            }
            if record.get(0).and_then(clean_number).is_none() {
                continue; // some other header
            }
        }
        let Some(field) = record.get(column).filter(|f| !f.is_empty()) else { continue };
        numbers.push(
            clean_number(field)
                .ok_or_else(|| invalid(format!("line {}", i + 1), "not a phone number or sip: URI"))?,
        );
        if numbers.len() > MAX_NUMBERS {
            return Err(invalid("numbers", format!("at most {MAX_NUMBERS} at a time")));
        }
    }
    Ok(numbers)
}

async fn view(state: &AppState, c: CampaignRow, with_numbers: bool) -> Result<Campaign, ApiError> {
    let (numbers, counts) =
        state.control.store.campaign_numbers(&c.id, if with_numbers { 1000 } else { 0 }).await?;
    let days = c.days.split(',').filter_map(|d| d.parse().ok()).collect();
    Ok(Campaign {
        id: c.id,
        name: c.name,
        agent_id: c.agent_id,
        status: c.status,
        window: CallWindow { start: c.window_start, end: c.window_end, time_zone: c.time_zone, days },
        max_concurrent: c.max_concurrent,
        ring_timeout_s: c.ring_timeout_s,
        retry: serde_json::from_str(&c.retry).unwrap_or_default(),
        answering_machine: c.answering_machine.as_deref().and_then(|a| serde_json::from_str(a).ok()),
        counts: counts.into_iter().collect(),
        numbers: with_numbers.then(|| numbers.into_iter().map(number_view).collect()),
        created_at: c.created_at,
        updated_at: c.updated_at,
    })
}

fn number_view(n: NumberRow) -> Number {
    Number {
        number: n.number,
        status: n.status,
        attempts: n.attempts,
        next_attempt_at: n.next_attempt_at,
        last_call_id: n.last_call_id,
        last_result: n.last_result,
        updated_at: n.updated_at,
    }
}

/// Starts a campaign: the agent calls its numbers within the window.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])), request_body = NewCampaign,
    responses((status = 201, body = Campaign), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 422, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    if state.dialer.is_none() {
        return Err(ApiError::Unavailable("SIP is off (sip.enabled = false)".into()));
    }
    if !(1..=100).contains(&req.name.chars().count()) || req.name.trim().is_empty() {
        return Err(invalid("name", "1 to 100 characters"));
    }
    let days: Vec<String> = req.window.days.iter().map(u8::to_string).collect();
    let days = days.join(",");
    Window::parse(&req.window.start, &req.window.end, &req.window.time_zone, &days)
        .map_err(|(field, reason)| invalid(field, reason))?;
    let max_concurrent = req.max_concurrent.unwrap_or(1);
    if !(1..=50).contains(&max_concurrent) {
        return Err(invalid("max_concurrent", "1 to 50"));
    }
    let ring_timeout_s = req.ring_timeout_s.unwrap_or(30);
    if !(5..=120).contains(&ring_timeout_s) {
        return Err(invalid("ring_timeout_s", "5 to 120"));
    }
    let r = &req.retry;
    for (field, rule) in
        [("busy", r.busy), ("no_answer", r.no_answer), ("failed", r.failed), ("machine", r.machine)]
    {
        if !(1..=10).contains(&rule.max_attempts) {
            return Err(invalid(format!("retry.{field}.max_attempts"), "1 to 10"));
        }
        if rule.retry_after_s > 7 * 86_400 {
            return Err(invalid(format!("retry.{field}.retry_after_s"), "at most a week"));
        }
    }
    if let Some(a) = &req.answering_machine {
        a.validate("answering_machine")?;
    }
    let numbers = clean_numbers(&req.numbers)?;
    let agent_id = req.agent.filter(|a| !a.is_empty());
    if let Some(id) = &agent_id
        && state.control.store.agent(&caller.tenant_id, id).await?.is_none()
    {
        return Err(ApiError::NotFound("agent"));
    }
    let now = now_ms();
    let row = CampaignRow {
        id: new_id("cmp"),
        tenant_id: caller.tenant_id.clone(),
        agent_id,
        name: req.name.trim().to_owned(),
        status: if req.paused { "paused" } else { "running" }.into(),
        window_start: req.window.start,
        window_end: req.window.end,
        time_zone: req.window.time_zone,
        days,
        max_concurrent,
        ring_timeout_s,
        retry: serde_json::to_string(&req.retry).unwrap_or_default(),
        answering_machine: req.answering_machine.as_ref().and_then(|a| serde_json::to_string(a).ok()),
        created_at: now,
        updated_at: now,
    };
    let store = &state.control.store;
    store.create_campaign(&row, &numbers).await?;
    tracing::info!(campaign = %row.id, numbers = numbers.len(), "campaign made");
    Ok((StatusCode::CREATED, Json(view(&state, row, true).await?)))
}

/// Adds numbers to a campaign: JSON (`{"numbers": [...]}`) or a CSV file
/// (`Content-Type: text/csv`; the `number` or `phone` column, else the first).
#[utoipa::path(post, path = "/v1/campaigns/{id}/numbers", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content((NewNumbers = "application/json"), (String = "text/csv"))),
    responses((status = 200, body = Added), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 415, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody)))]
pub async fn add_numbers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Added>, ApiError> {
    let store = &state.control.store;
    let campaign = store.campaign(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let kind = kind.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let numbers = match kind.as_str() {
        "text/csv" => numbers_from_csv(&body)?,
        "application/json" => {
            let req: NewNumbers = serde_json::from_slice(&body).map_err(|e| ApiError::Request {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("the body: {e}"),
            })?;
            clean_numbers(&req.numbers)?
        }
        _ => {
            return Err(ApiError::Request {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "send application/json or text/csv".into(),
            });
        }
    };
    if !["running", "paused"].contains(&campaign.status.as_str()) {
        return Err(ApiError::Conflict(format!("the campaign is {}", campaign.status)));
    }
    Ok(Json(Added { added: store.add_numbers(&id, &numbers).await? }))
}

/// The tenant's campaigns, newest first, with counts by status.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    responses((status = 200, body = CampaignList), (status = 401, body = super::ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<CampaignList>, ApiError> {
    let mut campaigns = Vec::new();
    for c in state.control.store.campaigns(&caller.tenant_id).await? {
        campaigns.push(view(&state, c, false).await?);
    }
    Ok(Json(CampaignList { campaigns }))
}

/// One campaign with its numbers' status and attempts.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Campaign), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    let c =
        state.control.store.campaign(&caller.tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    Ok(Json(view(&state, c, true).await?))
}

async fn change(
    state: &AppState,
    caller: &Caller,
    id: &str,
    from: &[&str],
    to: &str,
) -> Result<Json<Campaign>, ApiError> {
    let store = &state.control.store;
    let c = store.campaign(&caller.tenant_id, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    if c.status != to && !store.set_campaign_status(&caller.tenant_id, id, from, to).await? {
        return Err(ApiError::Conflict(format!("the campaign is {}", c.status)));
    }
    tracing::info!(campaign = %id, status = to, "campaign changed");
    let c = store.campaign(&caller.tenant_id, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    Ok(Json(view(state, c, false).await?))
}

/// Stops placing new calls (calls in progress go on).
#[utoipa::path(post, path = "/v1/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Campaign), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    change(&state, &caller, &id, &["running"], "paused").await
}

/// Places calls again.
#[utoipa::path(post, path = "/v1/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Campaign), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    change(&state, &caller, &id, &["paused"], "running").await
}

/// Ends the campaign: its numbers not yet called are cancelled.
#[utoipa::path(post, path = "/v1/campaigns/{id}/cancel", tag = "campaigns", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Campaign), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    change(&state, &caller, &id, &["running", "paused"], "cancelled").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_cleaned_or_refused() {
        assert_eq!(clean_number(" +1 (555) 010-2030 ").as_deref(), Some("+15550102030"));
        assert_eq!(clean_number("sip:bob@127.0.0.1:5070").as_deref(), Some("sip:bob@127.0.0.1:5070"));
        for bad in ["", "12", "+1234567890123456", "call me", "sip:"] {
            assert_eq!(clean_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn csv_finds_the_number_column_and_skips_headers() {
        let named = b"name,phone\nAnn,+15550001\nBob,+1 555 0002\n";
        assert_eq!(numbers_from_csv(named).ok(), Some(vec!["+15550001".into(), "+15550002".into()]));
        let bare = b"+15550001\n\n+15550003\n";
        assert_eq!(numbers_from_csv(bare).ok(), Some(vec!["+15550001".into(), "+15550003".into()]));
        let other = b"who\n+15550004\n";
        assert_eq!(numbers_from_csv(other).ok(), Some(vec!["+15550004".into()]));
        assert!(numbers_from_csv(b"number\nnot a number\n").is_err());
    }
}
