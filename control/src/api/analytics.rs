//! `/v1/analytics/...`: what the tenant's calls add up to, by day in a time
//! zone: counts, completion rate and average duration; sentiment; the five
//! categories; the phrases callers use most. Filtered by agent, campaign and
//! period; each answer is kept for [`CACHE_TTL`], so a dashboard refreshing
//! does not reread the calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use voxgate_pipeline::session::{CallLog, Speaker};

use super::{ApiError, ApiQuery};
use crate::api::AppState;
use crate::auth::Caller;
use crate::post_call::analytics::{Analytics, CATEGORIES};
use crate::store::{ReportFilter, ReportRow};

/// How long an answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Calls a report reads at most (the newest); `truncated` says when there were more.
const MAX_CALLS: u32 = 50_000;
/// Calls whose transcripts the phrases report reads at most.
const MAX_TRANSCRIPTS: u32 = 5_000;

/// The filters every report takes.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// One agent's calls only.
    pub agent: Option<String>,
    /// One campaign's calls only.
    pub campaign: Option<String>,
    /// Calls started at or after (Unix ms); default 30 days before `to`.
    #[param(minimum = 0)]
    pub from: Option<i64>,
    /// Calls started before (Unix ms); default now.
    #[param(minimum = 0)]
    pub to: Option<i64>,
    /// The time zone days are counted in (IANA name); default UTC.
    pub tz: Option<String>,
    /// Phrases to list (top-phrases only), 1 to 100; default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Recent answers, by tenant, report and query.
#[derive(Debug, Default)]
pub struct ReportCache {
    entries: Mutex<HashMap<String, (Instant, Value)>>,
}

impl ReportCache {
    fn get(&self, key: &str) -> Option<Value> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: Value) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= 1000 {
            entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Whether a call with `status` was carried through (not lost to no media,
/// a provider failure, or never answered).
fn completed(status: &str) -> bool {
    matches!(status, "caller_hung_up" | "agent_ended" | "transferred" | "max_duration" | "max_silence")
}

/// The calendar day of Unix ms `at` in `tz`, as `2026-11-22`.
fn day(at: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(at)
        .map_or_else(|_| "invalid".into(), |t| t.to_zoned(tz.clone()).date().to_string())
}

fn analytics_of(row: &ReportRow) -> Option<Analytics> {
    row.analytics.as_deref().and_then(|a| serde_json::from_str(a).ok())
}

/// Counts, completion rate and average duration per day.
#[must_use]
pub fn calls_report(rows: &[ReportRow], tz: &TimeZone) -> Value {
    #[derive(Default)]
    struct Day {
        calls: u64,
        completed: u64,
        duration_ms: i64,
    }
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut total = Day::default();
    for r in rows {
        for d in [days.entry(day(r.started_at, tz)).or_default(), &mut total] {
            d.calls += 1;
            d.completed += u64::from(completed(&r.status));
            d.duration_ms += r.duration_ms;
        }
    }
    let show = |d: &Day| {
        let n = d.calls.max(1) as f64;
        json!({
            "calls": d.calls,
            "completed": d.completed,
            "completion_rate": round3(d.completed as f64 / n),
            "average_duration_s": round3(d.duration_ms as f64 / 1000.0 / n),
        })
    };
    let days: Vec<Value> = days
        .iter()
        .map(|(date, d)| {
            let mut v = show(d);
            v["date"] = json!(date);
            v
        })
        .collect();
    json!({ "days": days, "total": show(&total) })
}

/// Average sentiment and how many calls were positive, neutral, negative, per day.
#[must_use]
pub fn sentiment_report(rows: &[ReportRow], tz: &TimeZone) -> Value {
    #[derive(Default)]
    struct Day {
        analysed: u64,
        sum: f64,
        positive: u64,
        neutral: u64,
        negative: u64,
    }
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut total = Day::default();
    for (r, a) in rows.iter().filter_map(|r| analytics_of(r).map(|a| (r, a))) {
        for d in [days.entry(day(r.started_at, tz)).or_default(), &mut total] {
            d.analysed += 1;
            d.sum += a.sentiment;
            match a.sentiment {
                s if s > 0.2 => d.positive += 1,
                s if s < -0.2 => d.negative += 1,
                _ => d.neutral += 1,
            }
        }
    }
    let show = |d: &Day| {
        json!({
            "analysed": d.analysed,
            "average": if d.analysed == 0 { Value::Null } else { json!(round3(d.sum / d.analysed as f64)) },
            "positive": d.positive, "neutral": d.neutral, "negative": d.negative,
        })
    };
    let days: Vec<Value> = days
        .iter()
        .map(|(date, d)| {
            let mut v = show(d);
            v["date"] = json!(date);
            v
        })
        .collect();
    json!({ "days": days, "total": show(&total) })
}

/// Calls per category, overall and per day (every category named, even at 0).
#[must_use]
pub fn categories_report(rows: &[ReportRow], tz: &TimeZone) -> Value {
    let zero = || CATEGORIES.iter().map(|c| ((*c).to_owned(), 0u64)).collect::<BTreeMap<String, u64>>();
    let mut days: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut total = zero();
    for (r, a) in rows.iter().filter_map(|r| analytics_of(r).map(|a| (r, a))) {
        let category =
            if CATEGORIES.contains(&a.category.as_str()) { a.category } else { "Others".to_owned() };
        *days.entry(day(r.started_at, tz)).or_insert_with(zero).entry(category.clone()).or_default() += 1;
        *total.entry(category).or_default() += 1;
    }
    let list = |m: &BTreeMap<String, u64>| -> Vec<Value> {
        CATEGORIES
            .iter()
            .map(|c| json!({ "category": c, "calls": m.get(*c).copied().unwrap_or(0) }))
            .collect()
    };
    let days: Vec<Value> =
        days.iter().map(|(date, m)| json!({ "date": date, "categories": list(m) })).collect();
    json!({ "days": days, "total": list(&total) })
}

/// Words too common to make a phrase on their own.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "for", "with", "is", "are",
    "was", "were", "be", "been", "it", "its", "this", "that", "i", "im", "me", "my", "you", "your", "we",
    "our", "us", "he", "she", "they", "them", "do", "does", "did", "can", "could", "would", "will", "just",
    "so", "yes", "no", "hi", "hello", "um", "uh", "oh", "okay", "ok", "please", "thanks", "thank", "have",
    "has", "had", "there", "what", "when", "how", "about", "from", "by", "as", "up", "out", "like", "want",
    "get", "got", "id", "ill",
];

/// The two- and three-word phrases callers say in the most calls.
#[must_use]
pub fn phrases_report(rows: &[ReportRow], limit: usize) -> Value {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for r in rows {
        let Some(log) = r.detail.as_deref().and_then(|d| serde_json::from_str::<CallLog>(d).ok()) else {
            continue;
        };
        // Each phrase counts once per call.
        let mut seen: HashSet<String> = HashSet::new();
        for line in log.transcript.iter().filter(|l| l.speaker == Speaker::Caller) {
            let words: Vec<String> = line
                .text
                .split(|c: char| !c.is_alphanumeric() && c != '\'')
                .map(|w| w.to_lowercase().replace('\'', ""))
                .filter(|w| !w.is_empty())
                .collect();
            for n in 2..=3 {
                for gram in words.windows(n) {
                    let ends = [&gram[0], &gram[n - 1]];
                    if ends.iter().any(|w| STOPWORDS.contains(&w.as_str())) {
                        continue;
                    }
                    seen.insert(gram.join(" "));
                }
            }
        }
        for phrase in seen {
            *counts.entry(phrase).or_default() += 1;
        }
    }
    let mut top: Vec<(String, u64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(limit);
    json!({ "phrases": top.into_iter().map(|(phrase, calls)| json!({ "phrase": phrase, "calls": calls })).collect::<Vec<_>>() })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Which report.
#[derive(Debug, Clone, Copy)]
enum Report {
    Calls,
    Sentiment,
    Categories,
    Phrases,
}

/// A report's `[from, to)` in Unix ms: `to` defaults to `now`, `from` to
/// 30 days before `to` (not before 1970). Any `i64` the caller sends is
/// answered, never overflowed on.
fn window(from: Option<i64>, to: Option<i64>, now: i64) -> Result<(i64, i64), ApiError> {
    const DEFAULT_SPAN_MS: i64 = 30 * 86_400_000;
    let to = to.unwrap_or(now);
    let from = from.unwrap_or_else(|| to.saturating_sub(DEFAULT_SPAN_MS).max(0));
    if from < 0 || to < 0 || from >= to {
        return Err(ApiError::BadRequest("from and to are Unix ms, from before to".into()));
    }
    Ok((from, to))
}

async fn report(
    state: &AppState,
    caller: &Caller,
    q: ReportQuery,
    kind: Report,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = window(q.from, q.to, crate::store::now_ms())?;
    let tz_name = q.tz.clone().unwrap_or_else(|| "UTC".into());
    let tz = TimeZone::get(&tz_name)
        .map_err(|_| ApiError::BadRequest(format!("tz {tz_name:?} is not a time zone")))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 100".into()));
    }
    let filter = ReportFilter { agent_id: q.agent.clone(), campaign_id: q.campaign.clone(), from, to };
    let key = format!("{}|{kind:?}|{filter:?}|{tz_name}|{limit}", caller.tenant_id);
    if let Some(cached) = state.control.reports.get(&key) {
        return Ok(Json(cached));
    }
    let detail = matches!(kind, Report::Phrases);
    let max = if detail { MAX_TRANSCRIPTS } else { MAX_CALLS };
    let rows = state.control.store.report_rows(&caller.tenant_id, &filter, detail, max + 1).await?;
    let truncated = rows.len() > max as usize;
    let rows = &rows[..rows.len().min(max as usize)];
    let mut out = match kind {
        Report::Calls => calls_report(rows, &tz),
        Report::Sentiment => sentiment_report(rows, &tz),
        Report::Categories => categories_report(rows, &tz),
        Report::Phrases => phrases_report(rows, limit as usize),
    };
    out["from"] = json!(from);
    out["to"] = json!(to);
    out["tz"] = json!(tz_name);
    out["truncated"] = json!(truncated);
    state.control.reports.put(key, out.clone());
    Ok(Json(out))
}

/// Calls per day: how many, how many completed (and the rate), average duration.
#[utoipa::path(get, path = "/v1/analytics/calls", tag = "analytics", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn calls(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    report(&state, &caller, q, Report::Calls).await
}

/// Callers' sentiment per day: average (-1..1) and positive, neutral, negative calls.
#[utoipa::path(get, path = "/v1/analytics/sentiment", tag = "analytics", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn sentiment(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    report(&state, &caller, q, Report::Sentiment).await
}

/// Calls per category, overall and per day.
#[utoipa::path(get, path = "/v1/analytics/categories", tag = "analytics", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn categories(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    report(&state, &caller, q, Report::Categories).await
}

/// The two- and three-word phrases callers used in the most calls.
#[utoipa::path(get, path = "/v1/analytics/top-phrases", tag = "analytics", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody)))]
pub async fn top_phrases(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    report(&state, &caller, q, Report::Phrases).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64, status: &str, category: &str, sentiment: f64, said: &[&str]) -> ReportRow {
        let analytics = json!({"intent": "i", "summary": "s", "category": category, "justification": "j",
            "quote": "q", "sentiment": sentiment, "turn_sentiments": [], "source": "llm", "model": "m",
            "attempts": 1, "errors": []});
        let transcript: Vec<Value> = said
            .iter()
            .enumerate()
            .map(
                |(i, t)| json!({"turn": i, "speaker": "caller", "text": t, "at_ms": 0, "interrupted": false}),
            )
            .collect();
        let detail = json!({"transcript": transcript, "events": [], "latencies": [], "end": {"reason": "caller_hung_up"},
            "duration_ms": 1000, "recorded_ms": 0, "dropped_frames": 0});
        ReportRow {
            started_at: at,
            duration_ms: 60_000,
            status: status.into(),
            analytics: Some(analytics.to_string()),
            detail: Some(detail.to_string()),
        }
    }

    // 2026-11-22T23:30Z and 2026-11-23T00:30Z: one UTC day apart, the same day in New York.
    const LATE: i64 = 1_795_390_200_000;
    const EARLY: i64 = LATE + 3_600_000;

    #[test]
    fn the_window_answers_any_i64_without_overflowing() {
        const NOW: i64 = 1_795_390_200_000;
        let month = 30 * 86_400_000;
        assert_eq!(window(None, None, NOW).ok(), Some((NOW - month, NOW)));
        // Near 1970 the default start stops at 0 rather than going negative.
        assert_eq!(window(None, Some(1_000), NOW).ok(), Some((0, 1_000)));
        // Schemathesis sent this `to`; `to - 30 days` used to overflow and panic.
        assert!(window(None, Some(-9_223_372_034_262_775_809), NOW).is_err());
        assert!(window(Some(i64::MIN), Some(i64::MAX), NOW).is_err());
        assert!(window(Some(NOW), Some(NOW), NOW).is_err());
        assert_eq!(window(Some(0), Some(i64::MAX), NOW).ok(), Some((0, i64::MAX)));
    }

    #[test]
    fn days_are_counted_in_the_asked_time_zone() {
        let rows =
            [row(LATE, "caller_hung_up", "Others", 0.5, &[]), row(EARLY, "no_media", "Others", 0.0, &[])];
        let utc = calls_report(&rows, &TimeZone::UTC);
        assert_eq!(utc["days"].as_array().map(Vec::len), Some(2), "{utc}");
        assert_eq!(utc["total"]["completion_rate"], 0.5);
        assert_eq!(utc["total"]["average_duration_s"], 60.0);
        let ny = calls_report(&rows, &TimeZone::get("America/New_York").unwrap());
        assert_eq!(ny["days"][0]["date"], "2026-11-22");
        assert_eq!(ny["days"][0]["calls"], 2);
    }

    #[test]
    fn sentiment_and_categories_add_up() {
        let rows = [
            row(LATE, "caller_hung_up", "Immediate Buyer", 0.8, &[]),
            row(LATE, "caller_hung_up", "Facing Issue", -0.6, &[]),
            row(LATE, "caller_hung_up", "Facing Issue", 0.0, &[]),
            ReportRow { analytics: None, ..row(LATE, "caller_hung_up", "Others", 0.0, &[]) },
        ];
        let s = sentiment_report(&rows, &TimeZone::UTC);
        assert_eq!((s["total"]["analysed"].as_u64(), s["total"]["average"].as_f64()), (Some(3), Some(0.067)));
        assert_eq!((s["total"]["positive"].as_u64(), s["total"]["negative"].as_u64()), (Some(1), Some(1)));
        let c = categories_report(&rows, &TimeZone::UTC);
        let total = c["total"].as_array().unwrap();
        assert_eq!(total.len(), 5);
        assert_eq!(total.iter().find(|t| t["category"] == "Facing Issue").unwrap()["calls"], 2);
    }

    #[test]
    fn phrases_count_once_per_call_and_skip_filler() {
        let rows = [
            row(
                LATE,
                "caller_hung_up",
                "Others",
                0.0,
                &["I want a birthday cake", "a birthday cake, yes a birthday cake"],
            ),
            row(LATE, "caller_hung_up", "Others", 0.0, &["Do you deliver birthday cakes?"]),
            row(LATE, "caller_hung_up", "Others", 0.0, &["Birthday cake for Saturday"]),
        ];
        let p = phrases_report(&rows, 3);
        assert_eq!(p["phrases"][0], json!({"phrase": "birthday cake", "calls": 2}), "{p}");
        assert!(!p.to_string().contains("\"a birthday"), "a phrase does not start with a stopword: {p}");
    }
}
