//! `GET /v1/billing/usage`: what the tenant's calls cost over a period,
//! by agent and channel, from the billing record each call leaves.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiQuery};
use crate::auth::Caller;
use crate::http::AppState;
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
    pub currency: String,
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, exclusive.
    pub to: i64,
    pub total: Totals,
    /// One entry per agent and channel (`agent_id` null: the configured agent).
    pub lines: Vec<Line>,
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

/// Unix ms at the start of `year`-`month`-01, UTC.
fn month_start(year: i64, month: i64) -> i64 {
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

/// `[from, to)` of `2026-11`.
fn month_range(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    if y.to_string().len() != 4 || !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    let next = if m == 12 { month_start(y + 1, 1) } else { month_start(y, m + 1) };
    Some((month_start(y, m), next))
}

/// The tenant's usage over a period (a month, or `from`..`to`; default:
/// this month so far), by agent and channel.
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
        (None, from, to) => {
            let (year, month) = year_month(crate::store::now_ms());
            (from.unwrap_or_else(|| month_start(year, month)), to.unwrap_or(i64::MAX))
        }
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
    Ok(Json(Usage { currency: state.calls.config.billing.currency.clone(), from, to, total, lines }))
}

/// The year and month (1..=12) of Unix ms `at`, UTC (Hinnant's civil_from_days).
fn year_month(at: i64) -> (i64, i64) {
    let z = at.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_where_the_calendar_says() {
        assert_eq!(month_start(1970, 1), 0);
        // 2026-11-01T00:00:00Z and 2027-01-01T00:00:00Z.
        assert_eq!(month_range("2026-11"), Some((1_793_491_200_000, 1_796_083_200_000)));
        assert_eq!(month_range("2026-12").map(|r| r.1), Some(1_798_761_600_000));
        assert_eq!(month_range("2024-02").map(|(a, b)| (b - a) / 86_400_000), Some(29));
        for bad in ["2026", "2026-13", "26-11", "2026-x", "1969-12"] {
            assert_eq!(month_range(bad), None, "{bad}");
        }
        assert_eq!(year_month(1_793_491_200_000), (2026, 11));
        assert_eq!(year_month(1_793_491_200_000 - 1), (2026, 10));
        assert_eq!(year_month(1_798_761_600_000 - 1), (2026, 12));
        assert_eq!(year_month(1_798_761_600_000), (2027, 1));
    }
}
