//! The work around each call, run from a queue in the database so that it
//! survives a restart and runs at least once:
//!
//! - when a call is answered: `call.started` webhooks;
//! - when it ends: `call.ended` webhooks and one `post_call` job, which
//!   stores the call's analytics ([`analytics`]) and billing record
//!   ([`billing`]), then queues `call.analyzed` webhooks, the visitor's
//!   email ([`email`]) and the CRM sync ([`crm`]) as the agent asks.
//!
//! Every job has a key naming the one thing it does (`email:CALL`), so
//! queueing it again adds nothing; each job checks what it already did
//! before doing it (analytics stored, email logged as sent, CRM sync
//! recorded), so a retry never repeats a finished step. A side effect whose
//! record was lost to a crash is repeated once, carrying the same id
//! (webhook `Voxgate-Delivery`, email `Message-ID`) so the receiver can
//! tell. Failed jobs go back on the queue with a growing wait; each try of a
//! webhook or an email is logged.

pub mod analytics;
pub mod billing;
pub mod crm;
pub mod email;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use voxgate_pipeline::session::{CallLog, Speaker};

use crate::agent::Agent;
use crate::agent::registry::Agents;
use crate::config::ControlConfig;
use crate::store::{CallRow, Delivery, EmailAttempt, LeasedJob, NewJob, Store, StoreError, now_ms};
use voxgate_domain::CallInfo;

/// How long a worker holds a job before another may take it (its node died).
const LEASE_MS: i64 = 5 * 60 * 1000;

/// A job failed; retried unless `permanent`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The call the job is about is not in the store.
    #[error("call {0} is not in the store")]
    NoCall(String),
    #[error("the payload does not read: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    #[error("{0}")]
    Email(#[from] email::EmailError),
    #[error("{0}")]
    Crm(#[from] crm::CrmError),
    /// The step needs an earlier one's result, not there yet.
    #[error("{0}")]
    NotReady(String),
    /// A webhook or CRM URL names an address that is not public.
    #[error("{0}")]
    Refused(#[from] voxgate_guarded_http::Refused),
    /// A webhook receiver did not take the event.
    #[error("{0}")]
    Webhook(String),
    /// The job's code panicked (a bug): counted as an attempt, retried like a failure.
    #[error("the job panicked: {0}")]
    Panicked(String),
    /// Its tries ran out while its node died or it panicked during them.
    #[error("gave up after {0} attempts")]
    Exhausted(u32),
}

impl JobError {
    /// Whether trying again cannot help.
    fn permanent(&self) -> bool {
        matches!(
            self,
            Self::Payload(_)
                | Self::Refused(_)
                | Self::UnknownKind(_)
                | Self::NoCall(_)
                | Self::Exhausted(_)
                | Self::Email(email::EmailError::Address { .. } | email::EmailError::NotConfigured)
        )
    }
}

/// Runs the work after calls.
#[derive(Debug)]
pub struct PostCallWork {
    store: Store,
    agents: Arc<Agents>,
    config: ControlConfig,
    default_tenant: String,
    mailer: email::Mailer,
    http: voxgate_guarded_http::Guarded,
    /// Wakes an idle worker when a job is queued here.
    queued: tokio::sync::Notify,
}

impl PostCallWork {
    /// The work for `config`'s settings.
    ///
    /// # Errors
    /// The SMTP settings do not make a client.
    pub fn new(
        config: &ControlConfig,
        store: Store,
        agents: Arc<Agents>,
        default_tenant: String,
    ) -> Result<Self, email::EmailError> {
        let http = voxgate_guarded_http::shared(config.allow_private_targets());
        Ok(Self {
            store,
            agents,
            config: config.clone(),
            default_tenant,
            mailer: email::Mailer::new(&config.smtp)?,
            http,
            queued: tokio::sync::Notify::new(),
        })
    }

    /// Deletes finished jobs (done or failed) older than
    /// `post_call.job_retention_days`, hourly, until `stop`.
    pub fn spawn_purge(self: &Arc<Self>, stop: &CancellationToken) {
        let days = self.config.post_call.job_retention_days;
        if days == 0 {
            return;
        }
        let (store, stop) = (self.store.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let before = now_ms() - i64::from(days) * 24 * 3600 * 1000;
                match store.purge_jobs(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, days, "finished post-call jobs purged"),
                    Err(e) => {
                        tracing::warn!(error = %e, "post-call jobs not purged; trying again in an hour")
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
            }
        });
    }

    /// Starts `[post_call] workers` workers; they stop when `stop` is cancelled.
    /// A worker that panics (a bug) is started again; its job's lease runs
    /// out and the job is tried again later.
    pub fn spawn_workers(self: &Arc<Self>, stop: &CancellationToken) {
        for _ in 0..self.config.post_call.workers {
            let (this, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let worker = tokio::spawn(this.clone().work(stop.clone()));
                    match worker.await {
                        Err(e) if e.is_panic() => {
                            tracing::error!("post-call worker panicked; starting another");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        _ => return,
                    }
                }
            });
        }
    }

    async fn work(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let job = match self.store.lease_job(LEASE_MS).await {
                Ok(Some(job)) => job,
                Ok(None) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.queued.notified() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "post-call queue unreadable; trying again");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let max_attempts = self.config.post_call.max_attempts.max(1);
            let outcome = attempt(&job, max_attempts, self.run(&job, &stop)).await;
            let count = |outcome| {
                let label = crate::metrics::JobLabel { kind: job.kind.clone(), outcome };
                crate::metrics::metrics().post_call_jobs.get_or_create(&label).inc();
            };
            let recorded = match outcome {
                Ok(()) => {
                    count("done");
                    self.store.job_done(&job.id).await
                }
                Err(e) => {
                    let settings = &self.config.post_call;
                    let retry = (!e.permanent() && job.attempts < settings.max_attempts.max(1)).then(|| {
                        let wait_s = u64::from(settings.retry_after_s.max(1))
                            .saturating_mul(4u64.saturating_pow(job.attempts.saturating_sub(1)))
                            .min(3600);
                        now_ms() + i64::try_from(wait_s * 1000).unwrap_or(i64::MAX)
                    });
                    tracing::warn!(job = %job.key, attempt = job.attempts, error = %e, retry = retry.is_some(), "post-call job failed");
                    count(if retry.is_some() { "retry" } else { "failed" });
                    self.store.job_failed(&job.id, &e.to_string(), retry).await
                }
            };
            if let Err(e) = recorded {
                // The lease runs out and the job runs again: at least once.
                tracing::warn!(job = %job.key, error = %e, "post-call job outcome not recorded");
            }
        }
    }

    async fn enqueue(&self, job: NewJob) {
        match self.store.enqueue(&job).await {
            Ok(_) => self.queued.notify_one(),
            Err(e) => tracing::error!(job = %job.key, error = %e, "post-call job not queued"),
        }
    }

    /// The agent that took a call (`None`: the configured one); `None` when
    /// it has been deleted since.
    async fn agent(&self, agent_id: Option<&str>) -> Option<Agent> {
        match agent_id {
            None => Some(self.agents.configured().clone()),
            Some(id) => self.agents.get(id).await.ok(),
        }
    }

    /// A WhatsApp conversation (`conversation_id`, its call's id too) was
    /// handed to the team: `conversation.escalated` to its agent's webhooks,
    /// once per handing (`at`, Unix ms).
    pub async fn conversation_escalated(
        &self,
        tenant: &str,
        agent_id: &str,
        conversation_id: &str,
        at: i64,
        data: Value,
    ) {
        let Some(agent) = self.agent(Some(agent_id)).await else { return };
        let event = "conversation.escalated";
        let body = json!({ "event": event, "call_id": conversation_id, "created_at": at, "data": data });
        self.queue_body(&agent, tenant, (conversation_id, &at.to_string()), event, &body).await;
    }

    /// Queues `event` to each of `agent`'s webhooks that wants it.
    async fn queue_webhooks(&self, agent: &Agent, tenant: &str, call_id: &str, event: &str, data: Value) {
        let body = json!({ "event": event, "call_id": call_id, "created_at": now_ms(), "data": data });
        self.queue_body(agent, tenant, (call_id, ""), event, &body).await;
    }

    /// Queues `body` as `event` of call `call_id` (one delivery per `instance`).
    async fn queue_body(
        &self,
        agent: &Agent,
        tenant: &str,
        (call_id, instance): (&str, &str),
        event: &str,
        body: &Value,
    ) {
        for hook in &agent.post_call.webhooks {
            if !hook.events.is_empty() && !hook.events.iter().any(|e| e == event) {
                continue;
            }
            self.enqueue(NewJob {
                key: format!("webhook:{call_id}:{event}{instance}:{}", hook.url),
                kind: "webhook".into(),
                tenant_id: tenant.to_owned(),
                call_id: Some(call_id.to_owned()),
                payload: json!({ "event": event, "url": hook.url, "agent_id": agent.id, "body": body })
                    .to_string(),
                run_at: 0,
            })
            .await;
        }
    }

    /// A call was answered: `call.started` to the agent's webhooks.
    pub async fn call_started(&self, call: &CallInfo) {
        let Some(agent) = self.agent(call.agent_id.as_deref()).await else { return };
        let tenant = call.tenant_id.as_deref().unwrap_or(&self.default_tenant).to_owned();
        let data = json!({
            "agent_id": call.agent_id,
            "channel": call.channel,
            "direction": call.direction.as_str(),
            "caller": call.caller,
            "callee": call.callee,
            "started_at": now_ms(),
        });
        self.queue_webhooks(&agent, &tenant, &call.id, "call.started", data).await;
    }

    /// A call ended and its record is stored: `call.ended` webhooks and its
    /// post-call job.
    pub async fn call_ended(&self, call: &CallRow) {
        if let Some(agent) = self.agent(call.agent_id.as_deref()).await {
            self.queue_webhooks(&agent, &call.tenant_id, &call.id, "call.ended", summary(call)).await;
        }
        self.enqueue(NewJob {
            key: format!("post_call:{}", call.id),
            kind: "post_call".into(),
            tenant_id: call.tenant_id.clone(),
            call_id: Some(call.id.clone()),
            payload: "{}".into(),
            run_at: 0,
        })
        .await;
    }

    async fn run(&self, job: &LeasedJob, stop: &CancellationToken) -> Result<(), JobError> {
        let payload: Value = serde_json::from_str(&job.payload)?;
        if job.kind == "webhook" {
            // `call.started` goes out before the call has a record.
            return self.webhook(job, &payload).await;
        }
        let call_id = job.call_id.clone().unwrap_or_default();
        let call =
            self.store.call(&job.tenant_id, &call_id).await?.ok_or_else(|| JobError::NoCall(call_id))?;
        match job.kind.as_str() {
            "post_call" => self.post_call(&call, stop).await,
            "email" => self.email(&call, &payload).await,
            "crm" => self.crm(&call, &payload).await,
            other => Err(JobError::UnknownKind(other.to_owned())),
        }
    }

    /// Analytics and billing, then what the agent asks for after a call.
    async fn post_call(&self, call: &CallRow, stop: &CancellationToken) -> Result<(), JobError> {
        let log: CallLog = serde_json::from_str(&call.detail)?;
        let agent = self.agent(call.agent_id.as_deref()).await;
        let analytics = match self.store.analytics(&call.id).await? {
            Some(done) => serde_json::from_str(&done)?,
            None => {
                let a = match agent.as_ref().map(|a| a.analyst.as_ref()) {
                    Some(Some(analyst)) => {
                        let attempts = self.config.post_call.analytics_attempts;
                        analytics::analyze(analyst.as_ref(), &log.transcript, attempts, stop).await
                    }
                    Some(None) => analytics::analyze_without_model(
                        &log.transcript,
                        "the local model is not asked (post_call.local_model_analytics = false)",
                    ),
                    None => analytics::analyze_without_model(&log.transcript, "the agent was deleted"),
                };
                tracing::info!(call_id = %call.id, source = %a.source, category = %a.category, attempts = a.attempts, "call analysed");
                self.store.set_analytics(&call.id, &serde_json::to_string(&a)?).await?;
                a
            }
        };
        self.store.record_billing(&billing::record(&self.config.billing, call, &log.usage)).await?;
        let Some(agent) = agent else { return Ok(()) };
        let data = json!({ "call": summary(call), "analytics": analytics });
        self.queue_webhooks(&agent, &call.tenant_id, &call.id, "call.analyzed", data).await;
        let spec = &agent.post_call;
        let caller_lines =
            log.transcript.iter().filter(|l| l.speaker == Speaker::Caller).map(|l| l.text.as_str());
        let Some(address) = email::address_in(caller_lines) else { return Ok(()) };
        for (wanted, kind) in [(spec.email, "email"), (spec.crm.is_some(), "crm")] {
            if wanted {
                self.enqueue(NewJob {
                    key: format!("{kind}:{}", call.id),
                    kind: kind.into(),
                    tenant_id: call.tenant_id.clone(),
                    call_id: Some(call.id.clone()),
                    payload: json!({ "to": address }).to_string(),
                    run_at: 0,
                })
                .await;
            }
        }
        Ok(())
    }

    async fn webhook(&self, job: &LeasedJob, payload: &Value) -> Result<(), JobError> {
        let event = payload["event"].as_str().unwrap_or_default();
        let url = payload["url"].as_str().unwrap_or_default();
        let call_id = job.call_id.as_deref().unwrap_or_default();
        // The secret is read now, never copied into the queue.
        let Some(agent) = self.agent(payload["agent_id"].as_str()).await else { return Ok(()) };
        let Some(hook) = agent.post_call.webhooks.iter().find(|h| h.url == url) else {
            tracing::info!(call_id, event, "webhook removed from the agent; not sent");
            return Ok(());
        };
        let body = serde_json::to_vec(&payload["body"])?;
        // The same on every retry of this event, so the receiver can drop repeats.
        let delivery = format!(
            "whd_{}",
            &hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, job.key.as_bytes()))[..24]
        );
        let allow = self.config.allow_private_targets();
        let attempt = match voxgate_guarded_http::check_url(url, allow) {
            Ok(()) => webhooks::deliver(&self.http, url, &hook.secret, event, &delivery, &body).await,
            Err(refused) => webhooks::Attempt { status: None, error: Some(refused.to_string()) },
        };
        let logged = Delivery {
            event: event.to_owned(),
            url: url.to_owned(),
            attempt: job.attempts,
            status_code: attempt.status,
            ok: attempt.error.is_none(),
            error: attempt.error.clone(),
            created_at: now_ms(),
        };
        self.store.log_delivery(&job.tenant_id, call_id, &logged).await?;
        voxgate_guarded_http::check_url(url, allow)?;
        match attempt.error {
            None => Ok(()),
            Some(e) => Err(JobError::Webhook(e)),
        }
    }

    async fn email(&self, call: &CallRow, payload: &Value) -> Result<(), JobError> {
        let to = payload["to"].as_str().unwrap_or_default();
        let sent = self.store.email_log(&call.tenant_id, &call.id).await?;
        if sent.iter().any(|a| a.status == "sent") {
            return Ok(()); // a retry after the send was recorded
        }
        let Some(agent) = self.agent(call.agent_id.as_deref()).await else { return Ok(()) };
        let analytics: Option<analytics::Analytics> =
            self.store.analytics(&call.id).await?.and_then(|a| serde_json::from_str(&a).ok());
        let log: CallLog = serde_json::from_str(&call.detail)?;
        let template = agent.post_call.email_template.clone();
        let body = email::render(
            &template,
            &agent.name,
            analytics.as_ref().map_or("", |a| a.summary.as_str()),
            &log.transcript_text(),
        );
        let subject = format!("Your conversation with {}", agent.name);
        let created_at = now_ms();
        let result = self.mailer.send(to, &subject, body, &format!("{}.summary@voxgate", call.id)).await;
        let attempt = EmailAttempt {
            recipient: to.to_owned(),
            template: if template.trim().is_empty() { "default".into() } else { "agent".into() },
            status: if result.is_ok() { "sent" } else { "failed" }.into(),
            error: result.as_ref().err().map(ToString::to_string),
            created_at,
            sent_at: result.is_ok().then(now_ms),
        };
        self.store.log_email(&call.tenant_id, &call.id, &attempt).await?;
        result.map_err(JobError::from)
    }

    async fn crm(&self, call: &CallRow, payload: &Value) -> Result<(), JobError> {
        if self.store.crm_sync(&call.id).await?.is_some() {
            return Ok(());
        }
        let email = payload["to"].as_str().unwrap_or_default();
        let Some(agent) = self.agent(call.agent_id.as_deref()).await else { return Ok(()) };
        let Some(settings) = &agent.post_call.crm else { return Ok(()) };
        let Some(analytics) = self
            .store
            .analytics(&call.id)
            .await?
            .and_then(|a| serde_json::from_str::<analytics::Analytics>(&a).ok())
        else {
            return Err(JobError::NotReady(format!("call {} has no analytics yet", call.id)));
        };
        voxgate_guarded_http::check_url(&settings.base_url, self.config.allow_private_targets())?;
        let crm = crm::Crm { http: &self.http, base_url: &settings.base_url, token: &settings.token };
        let contact = crm.contact(email).await?;
        let note =
            crm.add_note(&contact, &crm::note_body(&agent.name, &call.id, &analytics), call.ended_at).await?;
        tracing::info!(call_id = %call.id, contact = %contact, "CRM note added");
        self.store.record_crm_sync(&call.tenant_id, &call.id, email, &contact, &note).await?;
        Ok(())
    }
}

/// What webhooks say about a call.
fn summary(call: &CallRow) -> Value {
    json!({
        "id": call.id,
        "agent_id": call.agent_id,
        "campaign_id": call.campaign_id,
        "channel": call.channel,
        "direction": call.direction,
        "status": call.status,
        "caller": call.caller,
        "callee": call.callee,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "duration_ms": call.duration_ms,
    })
}
/// One attempt at `job`: `work`, unless the job was leased more often than
/// it may run (its node died, or it hung, during each try: it fails for good
/// instead of running forever); a panic in `work` is a failed attempt like
/// any other, not a worker lost with the job's lease.
async fn attempt(
    job: &LeasedJob,
    max_attempts: u32,
    work: impl std::future::Future<Output = Result<(), JobError>>,
) -> Result<(), JobError> {
    if job.attempts > max_attempts {
        return Err(JobError::Exhausted(max_attempts));
    }
    match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work)).await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic")
                .to_owned();
            tracing::error!(job = %job.key, panic = %what, "post-call job panicked");
            Err(JobError::Panicked(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leased(attempts: u32) -> LeasedJob {
        LeasedJob {
            id: "job_1".into(),
            key: "webhook:call_1".into(),
            kind: "webhook".into(),
            tenant_id: "ten_1".into(),
            call_id: Some("call_1".into()),
            payload: "{}".into(),
            attempts,
        }
    }

    #[tokio::test]
    async fn a_panicking_job_is_a_failed_attempt_and_a_job_leased_too_often_gives_up() {
        let panicked = attempt(&leased(1), 3, async { panic!("bug in a job") }).await;
        assert!(matches!(&panicked, Err(JobError::Panicked(what)) if what == "bug in a job"), "{panicked:?}");
        assert!(!panicked.unwrap_err().permanent(), "retried like any failure, within max_attempts");
        let ran = std::sync::atomic::AtomicBool::new(false);
        let work = async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        };
        let exhausted = attempt(&leased(4), 3, work).await;
        assert!(matches!(exhausted, Err(JobError::Exhausted(3))), "{exhausted:?}");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "a job past its attempts does not run again");
        assert!(attempt(&leased(3), 3, async { Ok(()) }).await.is_ok());
    }
}
