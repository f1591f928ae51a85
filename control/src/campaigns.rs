//! Outbound campaigns: an agent calls a list of numbers through the SIP
//! trunk, only inside a calling window in the campaign's time zone, at most
//! `max_concurrent` at a time, and calls again numbers that were busy, did
//! not answer or failed, as the retry policy says. Each number's status and
//! attempts are in the database; answered calls land in the call logs with
//! the campaign's id, and so does every attempt that did not connect.
//!
//! The [`Scheduler`] looks at the running campaigns every second. Numbers are
//! claimed with a lease (`store::campaigns`), so several nodes can run it.

use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::agent::answering::AnsweringMachineSpec;
use crate::agent::registry::Agents;
use crate::store::{CampaignRow, NewCall, Store, now_ms};
use voxgate_calls::Dialer;
use voxgate_calls::dial::{DialStatus, OutboundStatus};
use voxgate_pipeline::dsp::amd::AmdResult;

/// How long a dialled number is held before another node may dial it again
/// (its node died mid-call): longer than any call.
const LEASE_MS: i64 = 4 * 3600 * 1000;

/// When a campaign may call: local times in a time zone, on some weekdays.
#[derive(Debug, Clone)]
pub struct Window {
    start: Time,
    end: Time,
    tz: TimeZone,
    /// ISO weekdays (1 = Monday).
    days: Vec<i8>,
}

impl Window {
    /// The window from its stored parts (`09:00`, `17:00`, `Europe/London`, `1,2,3,4,5`).
    ///
    /// # Errors
    /// Which part is wrong, for the API to say.
    pub fn parse(start: &str, end: &str, tz: &str, days: &str) -> Result<Self, (&'static str, String)> {
        let time = |field: &'static str, v: &str| {
            let ok = v.len() == 5 && v.as_bytes()[2] == b':';
            ok.then(|| v.parse::<Time>().ok())
                .flatten()
                .ok_or((field, format!("{v:?} is not a time like 09:30")))
        };
        let (start, end) = (time("window.start", start)?, time("window.end", end)?);
        if start == end {
            return Err(("window.end", "the window must not be empty".into()));
        }
        let tz = TimeZone::get(tz)
            .map_err(|_| ("window.time_zone", format!("{tz:?} is not an IANA time zone")))?;
        let days: Vec<i8> = days
            .split(',')
            .map(|d| d.trim().parse::<i8>().ok().filter(|d| (1..=7).contains(d)))
            .collect::<Option<_>>()
            .ok_or(("window.days", "days are 1 (Monday) to 7 (Sunday)".to_owned()))?;
        if days.is_empty() {
            return Err(("window.days", "at least one day".into()));
        }
        Ok(Self { start, end, tz, days })
    }

    /// Whether calls may be placed at `now`. A window whose end is before its
    /// start runs past midnight (the day is the one it opened on).
    #[must_use]
    pub fn is_open(&self, now: jiff::Timestamp) -> bool {
        let local = now.to_zoned(self.tz.clone());
        let (t, weekday) = (local.time(), local.weekday().to_monday_one_offset());
        if self.start < self.end {
            return self.days.contains(&weekday) && self.start <= t && t < self.end;
        }
        let yesterday = if weekday == 1 { 7 } else { weekday - 1 };
        (t >= self.start && self.days.contains(&weekday)) || (t < self.end && self.days.contains(&yesterday))
    }
}

/// How a number is retried after one kind of outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    /// Attempts in all (1: never retried), at most 10.
    pub max_attempts: u32,
    /// The wait before the next attempt, in seconds.
    pub retry_after_s: u32,
}

/// Retries by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub busy: RetryRule,
    pub no_answer: RetryRule,
    pub failed: RetryRule,
    /// An answering machine answered (with detection on; whether or not a
    /// message was left): by default never called again.
    pub machine: RetryRule,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            busy: RetryRule { max_attempts: 3, retry_after_s: 600 },
            no_answer: RetryRule { max_attempts: 3, retry_after_s: 1800 },
            failed: RetryRule { max_attempts: 2, retry_after_s: 300 },
            machine: RetryRule { max_attempts: 1, retry_after_s: 3600 },
        }
    }
}

/// Where a number goes after an attempt (its outcome, and whether a
/// machine answered): its status, and when it is due again (for `pending`).
#[must_use]
pub fn after_attempt(
    policy: &RetryPolicy,
    (outcome, machine): (DialStatus, bool),
    attempts: u32,
    now: i64,
) -> (&'static str, i64) {
    let (rule, status) = match outcome {
        DialStatus::Busy => (policy.busy, "busy"),
        DialStatus::NoAnswer => (policy.no_answer, "no_answer"),
        DialStatus::Failed => (policy.failed, "failed"),
        DialStatus::Completed if machine => (policy.machine, "machine"),
        _ => return ("completed", 0),
    };
    if attempts < rule.max_attempts {
        ("pending", now + i64::from(rule.retry_after_s) * 1000)
    } else {
        (status, 0)
    }
}

/// `agent` with the campaign's own answering-machine setting, if it has one.
fn with_own_amd(
    mut agent: voxgate_calls::CallAgent,
    campaign: &CampaignRow,
) -> Result<voxgate_calls::CallAgent, String> {
    if let Some(spec) = campaign.answering_machine.as_deref() {
        let spec: AnsweringMachineSpec =
            serde_json::from_str(spec).map_err(|e| format!("the campaign's answering_machine: {e}"))?;
        agent.answering_machine = spec.to_session().map_err(|e| e.to_string())?;
    }
    Ok(agent)
}

/// Runs the running campaigns.
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    agents: Arc<Agents>,
    dialer: Arc<dyn Dialer>,
}

impl Scheduler {
    #[must_use]
    pub fn new(store: Store, agents: Arc<Agents>, dialer: Arc<dyn Dialer>) -> Self {
        Self { store, agents, dialer }
    }

    /// Looks at the campaigns every second until `stop`.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "campaign scheduler");
                }
            }
        });
    }

    async fn tick(self: &Arc<Self>) -> Result<(), crate::store::StoreError> {
        let now = jiff::Timestamp::now();
        for campaign in self.store.running_campaigns().await? {
            if self.store.complete_campaign_if_done(&campaign.id).await? {
                tracing::info!(campaign = %campaign.id, "campaign completed");
                continue;
            }
            let window = match Window::parse(
                &campaign.window_start,
                &campaign.window_end,
                &campaign.time_zone,
                &campaign.days,
            ) {
                Ok(w) => w,
                Err((field, reason)) => {
                    tracing::warn!(campaign = %campaign.id, field, reason, "campaign window unreadable");
                    continue;
                }
            };
            if !window.is_open(now) {
                continue;
            }
            // A tenant whose plan takes no calls now (suspended, trial over,
            // minutes used) dials nothing: its numbers wait, attempts unspent.
            if self.agents.plans().gate(&self.store, &campaign.tenant_id).await?.closed.is_some() {
                continue;
            }
            let busy = self.store.dialing(&campaign.id).await?;
            for _ in busy..campaign.max_concurrent {
                let Some((number, attempt)) = self.store.claim_number(&campaign.id, LEASE_MS).await? else {
                    break;
                };
                let (this, campaign) = (self.clone(), campaign.clone());
                tokio::spawn(async move { this.place(&campaign, &number, attempt).await });
            }
        }
        Ok(())
    }

    /// Dials `number` for `campaign`, follows the call to its outcome and
    /// records it.
    async fn place(&self, campaign: &CampaignRow, number: &str, attempt: u32) {
        let policy: RetryPolicy = serde_json::from_str(&campaign.retry).unwrap_or_default();
        let agent = match &campaign.agent_id {
            None => Ok(self.agents.configured().call.clone()),
            // With its tenant's plan: a closed one dials nothing (admission refuses).
            Some(id) => self.agents.for_call(id).await,
        };
        let ring = Some(Duration::from_secs(u64::from(campaign.ring_timeout_s)));
        let placed =
            match agent.map_err(|e| format!("the agent: {e}")).and_then(|a| with_own_amd(a, campaign)) {
                Ok(agent) => self
                    .dialer
                    .dial(&campaign.tenant_id, agent, number, ring, Some(campaign.id.clone()))
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
        let (outcome, call_id, result) = match placed {
            Ok(status) => {
                let last = self.follow(&status.id).await;
                let mut result = match (last.status, last.sip_status) {
                    (s, Some(code)) => format!("{} ({code})", s.as_str()),
                    (s, None) => s.as_str().to_owned(),
                };
                if let Some(amd) = &last.amd {
                    result = format!("{result}, {}", amd.result.as_str());
                }
                if !matches!(last.status, DialStatus::Completed | DialStatus::Transferred) {
                    self.log_unanswered(campaign, number, &last).await;
                }
                let machine = last.amd.as_ref().is_some_and(|d| d.result == AmdResult::Machine);
                ((last.status, machine), Some(last.id), result)
            }
            Err(e) => {
                tracing::warn!(campaign = %campaign.id, error = %e, "campaign call not placed");
                ((DialStatus::Failed, false), None, e)
            }
        };
        let (status, due) = after_attempt(&policy, outcome, attempt, now_ms());
        tracing::info!(campaign = %campaign.id, attempt, outcome = %result, next = status, "campaign call done");
        if let Err(e) =
            self.store.number_outcome(&campaign.id, number, status, due, call_id.as_deref(), &result).await
        {
            // The lease runs out and the number is dialled again.
            tracing::error!(campaign = %campaign.id, error = %e, "campaign number outcome not saved");
        }
    }

    /// Waits for a placed call's outcome.
    async fn follow(&self, id: &str) -> OutboundStatus {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match self.dialer.status(id) {
                Some(s) if s.status.is_final() => return s,
                Some(_) => {}
                // Forgotten (the dialler keeps 10,000 calls): count it as failed.
                None => {
                    return OutboundStatus {
                        id: id.to_owned(),
                        to: String::new(),
                        status: DialStatus::Failed,
                        sip_status: None,
                        hung_up_by: None,
                        transferred_to: None,
                        created_at: 0,
                        answered_at: None,
                        ended_at: None,
                        tenant_id: String::new(),
                        campaign_id: None,
                        amd: None,
                    };
                }
            }
        }
    }

    /// An attempt that did not connect still goes in the call logs.
    async fn log_unanswered(&self, campaign: &CampaignRow, number: &str, s: &OutboundStatus) {
        let ended = now_ms();
        let record = NewCall {
            id: s.id.clone(),
            tenant_id: campaign.tenant_id.clone(),
            agent_id: campaign.agent_id.clone(),
            campaign_id: Some(campaign.id.clone()),
            channel: "sip".into(),
            direction: "outbound".into(),
            status: s.status.as_str().to_owned(),
            caller: None,
            callee: Some(number.to_owned()),
            external_id: None,
            room: None,
            started_at: i64::try_from(s.created_at).unwrap_or(ended),
            ended_at: ended,
            duration_ms: 0,
            recording: None,
            detail: serde_json::json!({ "dial": s }).to_string(),
        };
        if let Err(e) = self.store.save_call(&record).await {
            tracing::error!(campaign = %campaign.id, error = %e, "unanswered campaign call not logged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_window_is_read_in_its_time_zone_and_days() {
        // 2026-11-23 is a Monday.
        let w = Window::parse("09:00", "17:00", "America/New_York", "1,2,3,4,5").unwrap();
        assert!(w.is_open(at("2026-11-23T14:00:00Z")), "09:00 in New York");
        assert!(!w.is_open(at("2026-11-23T13:59:00Z")), "08:59 in New York");
        assert!(!w.is_open(at("2026-11-23T22:00:00Z")), "17:00 is closed");
        assert!(!w.is_open(at("2026-11-22T15:00:00Z")), "Sunday");
        let night = Window::parse("22:00", "02:00", "UTC", "5").unwrap();
        assert!(night.is_open(at("2026-11-27T23:00:00Z")), "Friday night");
        assert!(night.is_open(at("2026-11-28T01:00:00Z")), "still Friday's window on Saturday");
        assert!(!night.is_open(at("2026-11-29T01:00:00Z")), "Saturday's window is closed");
    }

    #[test]
    fn bad_windows_name_the_field() {
        let field = |s, e, tz, d| Window::parse(s, e, tz, d).err().map(|(f, _)| f);
        assert_eq!(field("9:00", "17:00", "UTC", "1"), Some("window.start"));
        assert_eq!(field("09:00", "09:00", "UTC", "1"), Some("window.end"));
        assert_eq!(field("09:00", "17:00", "Mars/Olympus", "1"), Some("window.time_zone"));
        assert_eq!(field("09:00", "17:00", "UTC", "0,8"), Some("window.days"));
    }

    #[test]
    fn outcomes_are_retried_until_the_policy_runs_out() {
        let p = RetryPolicy::default();
        let person = |s| (s, false);
        assert_eq!(after_attempt(&p, person(DialStatus::Busy), 1, 1000), ("pending", 601_000));
        assert_eq!(after_attempt(&p, person(DialStatus::Busy), 3, 1000), ("busy", 0));
        assert_eq!(after_attempt(&p, person(DialStatus::NoAnswer), 2, 0), ("pending", 1_800_000));
        assert_eq!(after_attempt(&p, person(DialStatus::Failed), 2, 0), ("failed", 0));
        assert_eq!(after_attempt(&p, person(DialStatus::Completed), 1, 0), ("completed", 0));
        assert_eq!(after_attempt(&p, person(DialStatus::Transferred), 1, 0), ("completed", 0));
        // A machine is final by default; a policy may treat it as unanswered.
        let machine = (DialStatus::Completed, true);
        assert_eq!(after_attempt(&p, machine, 1, 0), ("machine", 0));
        let again = RetryPolicy { machine: RetryRule { max_attempts: 3, retry_after_s: 7200 }, ..p };
        assert_eq!(after_attempt(&again, machine, 1, 0), ("pending", 7_200_000));
        assert_eq!(after_attempt(&again, machine, 3, 0), ("machine", 0));
    }
}
