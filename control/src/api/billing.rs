//! `GET /v1/billing/usage`: what the tenant's calls cost over a period,
//! by agent and channel, from the billing record each call leaves.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiQuery};
use crate::api::AppState;
use crate::auth::Caller;
use crate::store::UsageRow;

/// `GET /v1/billing/usage`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// A calendar month, UTC, e.g. `2026-11`; or give `from` and `to`.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
    /// Calls started at or after (Unix ms).
    #[param(minimum = 0)]
    pub from: Option<i64>,
    /// Calls started before (Unix ms).
    #[param(minimum = 0)]
    pub to: Option<i64>,
    /// One agent's calls only; `default` for the configured agent's.
    pub agent: Option<String>,
}

/// Usage over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The tenant's plan, its limits and this month's use against them;
    /// absent: no plan (the operator's limits alone).
    pub plan: Option<PlanUsage>,
    pub currency: String,
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, exclusive.
    pub to: i64,
    pub total: Totals,
    /// One entry per agent and channel (`agent_id` null: the configured agent).
    pub lines: Vec<Line>,
}

/// A tenant's plan and this calendar month's use of it (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanUsage {
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Why it takes no calls now (`suspended`, `trial_ended`,
    /// `minutes_used`); absent: it takes them.
    pub closed: Option<&'static str>,
    /// Unix ms; absent: no end.
    pub trial_ends_at: Option<i64>,
    /// The month counted from (Unix ms).
    pub since: i64,
    /// The plan's limits (0: none).
    pub limits: crate::config::PlanSettings,
    pub used: PlanUsed,
}

/// This month's use, in the plan's units.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanUsed {
    /// Calls and chats, every channel but WhatsApp.
    pub minutes: f64,
    pub agents: u64,
    pub knowledge_bytes: u64,
    pub whatsapp_conversations: i64,
}

/// The tenant's plan and its use this month; `None`: no plan.
async fn plan_usage(state: &AppState, tenant: &str) -> Result<Option<PlanUsage>, ApiError> {
    let store = &state.control.store;
    let now = crate::store::now_ms();
    let standing = state.agents.plans().standing(store, tenant, now).await?;
    let Some(standing) = standing else { return Ok(None) };
    let Some(plan) = standing.plan else { return Ok(None) };
    let since = crate::plans::month_start(now);
    let agents = store.agents(tenant).await?;
    let mut knowledge_bytes = 0;
    for row in &agents {
        let spec: crate::agent::spec::AgentSpec = serde_json::from_str(&row.spec)
            .map_err(|source| ApiError::Store(crate::store::StoreError::Corrupt { what: "agent", source }))?;
        knowledge_bytes += spec.knowledge_bytes();
    }
    Ok(Some(PlanUsage {
        name: plan.name.clone(),
        status: standing.stored.status,
        closed: standing.closed.map(voxgate_calls::PlanClosed::as_str),
        trial_ends_at: standing.stored.trial_ends_at,
        since,
        used: PlanUsed {
            // Summed now, not the half-minute-old sum admission reads.
            minutes: store.call_ms_since(tenant, since).await? as f64 / 60_000.0,
            agents: agents.len() as u64,
            knowledge_bytes,
            whatsapp_conversations: store.conversations_since(tenant, since).await?,
        },
        limits: plan,
    }))
}

/// Sums of billing records.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Totals {
    pub calls: i64,
    pub duration_seconds: f64,
    pub billable_minutes: f64,
    /// In `currency`.
    pub amount: f64,
    pub stt_seconds: f64,
    pub llm_prompt_tokens: i64,
    pub llm_completion_tokens: i64,
    pub tts_characters: i64,
}

/// One agent's usage on one channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Line {
    pub agent_id: Option<String>,
    pub channel: String,
    #[serde(flatten)]
    pub totals: Totals,
}

impl Totals {
    fn add(&mut self, r: &UsageRow) {
        self.calls += r.calls;
        self.duration_seconds += r.duration_ms as f64 / 1000.0;
        self.billable_minutes += r.billable_seconds as f64 / 60.0;
        self.amount += r.amount_micros as f64 / 1e6;
        self.stt_seconds += r.stt_audio_ms as f64 / 1000.0;
        self.llm_prompt_tokens += r.llm_prompt_tokens;
        self.llm_completion_tokens += r.llm_completion_tokens;
        self.tts_characters += r.tts_characters;
    }
}

/// `[from, to)` in Unix ms of a month like `2026-11`, UTC.
fn month_range(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let start = jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, 1).ok()?;
    let end = start.checked_add(jiff::ToSpan::month(1)).ok()?;
    let ms = |d: jiff::civil::Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp().as_millisecond())
    };
    let (from, to) = (ms(start)?, ms(end)?);
    (from >= 0).then_some((from, to))
}

/// The tenant's usage over a period (a month, or `from`..`to`; default:
/// this month so far), by agent and channel; and its plan's limits beside
/// this month's use of them.
#[utoipa::path(get, path = "/v1/billing/usage", tag = "billing", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = Usage), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    let (from, to) = match (&q.month, q.from, q.to) {
        (Some(m), None, None) => month_range(m)
            .ok_or_else(|| ApiError::BadRequest("month must be YYYY-MM, e.g. 2026-11".into()))?,
        (Some(_), _, _) => return Err(ApiError::BadRequest("give month, or from and to, not both".into())),
        (None, from, to) => (
            from.unwrap_or_else(|| crate::plans::month_start(crate::store::now_ms())),
            to.unwrap_or(i64::MAX),
        ),
    };
    if from < 0 || to < 0 {
        return Err(ApiError::BadRequest("from and to are Unix milliseconds, not below 0".into()));
    }
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    let agent = q.agent.as_deref().map(|a| if a == "default" { "" } else { a });
    let rows = state.control.store.usage(&caller.tenant_id, from, to, agent).await?;
    let mut total = Totals::default();
    let mut lines = Vec::with_capacity(rows.len());
    for r in &rows {
        total.add(r);
        let mut t = Totals::default();
        t.add(r);
        lines.push(Line { agent_id: r.agent_id.clone(), channel: r.channel.clone(), totals: t });
    }
    let plan = plan_usage(&state, &caller.tenant_id).await?;
    Ok(Json(Usage { plan, currency: state.config.billing.currency.clone(), from, to, total, lines }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_where_the_calendar_says() {
        // 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
        assert_eq!(month_range("2026-11"), Some((1_793_491_200_000, 1_796_083_200_000)));
        assert_eq!(month_range("2026-12").map(|r| r.1), Some(1_798_761_600_000));
        assert_eq!(month_range("2024-02").map(|(a, b)| (b - a) / 86_400_000), Some(29));
        for bad in ["2026", "2026-13", "26-11", "2026-x", "1969-12", "2026-1"] {
            assert_eq!(month_range(bad), None, "{bad}");
        }
    }
}
