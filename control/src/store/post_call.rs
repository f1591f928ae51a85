//! What the post-call jobs leave: analytics on the call, the email and
//! webhook logs, CRM syncs and billing records.

use sqlx::Row as _;

use super::{Store, StoreError, new_id, now_ms};

/// One attempt to email a visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAttempt {
    pub recipient: String,
    pub template: String,
    /// `sent` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: String,
    pub url: String,
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub ok: bool,
    pub error: Option<String>,
    pub created_at: i64,
}

/// A call's billing record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingRecord {
    pub call_id: String,
    pub tenant_id: String,
    pub agent_id: Option<String>,
    pub channel: String,
    pub started_at: i64,
    pub duration_ms: i64,
    pub billable_seconds: i64,
    pub rate_per_minute_micros: i64,
    pub amount_micros: i64,
    pub stt_audio_ms: i64,
    pub llm_prompt_tokens: i64,
    pub llm_completion_tokens: i64,
    pub tts_characters: i64,
}

/// Billing totals of one agent on one channel over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    pub agent_id: Option<String>,
    pub channel: String,
    pub calls: i64,
    pub duration_ms: i64,
    pub billable_seconds: i64,
    pub amount_micros: i64,
    pub stt_audio_ms: i64,
    pub llm_prompt_tokens: i64,
    pub llm_completion_tokens: i64,
    pub tts_characters: i64,
}

/// What the analytics reports read of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub started_at: i64,
    pub duration_ms: i64,
    pub status: String,
    /// JSON, once analysed.
    pub analytics: Option<String>,
    /// The call's log (JSON), when asked for.
    pub detail: Option<String>,
}

/// Which calls a report covers: `[from, to)` in Unix ms, of one agent or campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ReportFilter {
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    pub from: i64,
    pub to: i64,
}

impl Store {
    /// The ended calls `filter` covers (newest first, at most `limit`), with
    /// their logs when `detail`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn report_rows(
        &self,
        tenant_id: &str,
        filter: &ReportFilter,
        detail: bool,
        limit: u32,
    ) -> Result<Vec<ReportRow>, StoreError> {
        macro_rules! report {
            ($detail:literal) => {
                concat!(
                    "SELECT started_at, duration_ms, status, analytics, ",
                    $detail,
                    " AS detail FROM calls WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3 \
                     AND (CAST($4 AS TEXT) IS NULL OR agent_id = CAST($4 AS TEXT)) \
                     AND (CAST($5 AS TEXT) IS NULL OR campaign_id = CAST($5 AS TEXT)) \
                     AND status <> 'in_progress' \
                     ORDER BY started_at DESC LIMIT $6"
                )
            };
        }
        let sql = if detail { report!("detail") } else { report!("CAST(NULL AS TEXT)") };
        let rows = sqlx::query(sql)
            .bind(tenant_id)
            .bind(filter.from)
            .bind(filter.to)
            .bind(&filter.agent_id)
            .bind(&filter.campaign_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ReportRow {
                    started_at: r.try_get("started_at")?,
                    duration_ms: r.try_get("duration_ms")?,
                    status: r.try_get("status")?,
                    analytics: r.try_get("analytics")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// A call's analytics (JSON), if analysed.
    ///
    /// # Errors
    /// The database fails.
    pub async fn analytics(&self, call_id: &str) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> = sqlx::query_scalar("SELECT analytics FROM calls WHERE id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.flatten())
    }

    /// Stores a call's analytics (JSON).
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_analytics(&self, call_id: &str, analytics: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET analytics = $2 WHERE id = $1")
            .bind(call_id)
            .bind(analytics)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Logs an attempt to email a visitor.
    ///
    /// # Errors
    /// The database fails.
    pub async fn log_email(
        &self,
        tenant_id: &str,
        call_id: &str,
        a: &EmailAttempt,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO email_log (id, tenant_id, call_id, recipient, template, status, error, created_at, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new_id("eml"))
        .bind(tenant_id)
        .bind(call_id)
        .bind(&a.recipient)
        .bind(&a.template)
        .bind(&a.status)
        .bind(&a.error)
        .bind(a.created_at)
        .bind(a.sent_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A call's email attempts, oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn email_log(&self, tenant_id: &str, call_id: &str) -> Result<Vec<EmailAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT recipient, template, status, error, created_at, sent_at FROM email_log \
             WHERE tenant_id = $1 AND call_id = $2 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EmailAttempt {
                    recipient: r.try_get("recipient")?,
                    template: r.try_get("template")?,
                    status: r.try_get("status")?,
                    error: r.try_get("error")?,
                    created_at: r.try_get("created_at")?,
                    sent_at: r.try_get("sent_at")?,
                })
            })
            .collect()
    }

    /// Logs a webhook delivery attempt.
    ///
    /// # Errors
    /// The database fails.
    pub async fn log_delivery(&self, tenant_id: &str, call_id: &str, d: &Delivery) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, tenant_id, call_id, event, url, attempt, status_code, ok, error, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id("whd"))
        .bind(tenant_id)
        .bind(call_id)
        .bind(&d.event)
        .bind(&d.url)
        .bind(i64::from(d.attempt))
        .bind(d.status_code.map(i64::from))
        .bind(i64::from(d.ok))
        .bind(&d.error)
        .bind(d.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A call's webhook deliveries, oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn deliveries(&self, tenant_id: &str, call_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT event, url, attempt, status_code, ok, error, created_at FROM webhook_deliveries \
             WHERE tenant_id = $1 AND call_id = $2 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    event: r.try_get("event")?,
                    url: r.try_get("url")?,
                    attempt: u32::try_from(r.try_get::<i64, _>("attempt")?).unwrap_or(u32::MAX),
                    status_code: r
                        .try_get::<Option<i64>, _>("status_code")?
                        .and_then(|s| u16::try_from(s).ok()),
                    ok: r.try_get::<i64, _>("ok")? != 0,
                    error: r.try_get("error")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The CRM contact and note a call was synced to, if it was.
    ///
    /// # Errors
    /// The database fails.
    pub async fn crm_sync(&self, call_id: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT contact_id, note_id FROM crm_syncs WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("contact_id")?, r.try_get("note_id")?))).transpose()
    }

    /// Records that a call was synced to the CRM.
    ///
    /// # Errors
    /// The database fails.
    pub async fn record_crm_sync(
        &self,
        tenant_id: &str,
        call_id: &str,
        email: &str,
        contact_id: &str,
        note_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO crm_syncs (call_id, tenant_id, email, contact_id, note_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call_id)
        .bind(tenant_id)
        .bind(email)
        .bind(contact_id)
        .bind(note_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a call's billing record, unless it has one.
    ///
    /// # Errors
    /// The database fails.
    pub async fn record_billing(&self, b: &BillingRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO billing_records (call_id, tenant_id, agent_id, channel, started_at, duration_ms, \
             billable_seconds, rate_per_minute_micros, amount_micros, stt_audio_ms, llm_prompt_tokens, \
             llm_completion_tokens, tts_characters, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(&b.call_id)
        .bind(&b.tenant_id)
        .bind(&b.agent_id)
        .bind(&b.channel)
        .bind(b.started_at)
        .bind(b.duration_ms)
        .bind(b.billable_seconds)
        .bind(b.rate_per_minute_micros)
        .bind(b.amount_micros)
        .bind(b.stt_audio_ms)
        .bind(b.llm_prompt_tokens)
        .bind(b.llm_completion_tokens)
        .bind(b.tts_characters)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Billing totals per agent and channel of calls started in `[from, to)`
    /// (Unix ms), of one agent when given (`""`: the configured agent).
    ///
    /// # Errors
    /// The database fails.
    pub async fn usage(
        &self,
        tenant_id: &str,
        from: i64,
        to: i64,
        agent_id: Option<&str>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            // SUM of BIGINT is NUMERIC on PostgreSQL: cast back to read it the same on both.
            "SELECT agent_id, channel, CAST(COUNT(*) AS BIGINT) AS calls, \
             CAST(SUM(duration_ms) AS BIGINT) AS duration_ms, \
             CAST(SUM(billable_seconds) AS BIGINT) AS billable_seconds, \
             CAST(SUM(amount_micros) AS BIGINT) AS amount_micros, \
             CAST(SUM(stt_audio_ms) AS BIGINT) AS stt_audio_ms, \
             CAST(SUM(llm_prompt_tokens) AS BIGINT) AS llm_prompt_tokens, \
             CAST(SUM(llm_completion_tokens) AS BIGINT) AS llm_completion_tokens, \
             CAST(SUM(tts_characters) AS BIGINT) AS tts_characters \
             FROM billing_records WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3 \
             AND (CAST($4 AS TEXT) IS NULL OR COALESCE(agent_id, '') = CAST($4 AS TEXT)) \
             GROUP BY agent_id, channel ORDER BY agent_id, channel",
        )
        .bind(tenant_id)
        .bind(from)
        .bind(to)
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    agent_id: r.try_get("agent_id")?,
                    channel: r.try_get("channel")?,
                    calls: r.try_get("calls")?,
                    duration_ms: r.try_get("duration_ms")?,
                    billable_seconds: r.try_get("billable_seconds")?,
                    amount_micros: r.try_get("amount_micros")?,
                    stt_audio_ms: r.try_get("stt_audio_ms")?,
                    llm_prompt_tokens: r.try_get("llm_prompt_tokens")?,
                    llm_completion_tokens: r.try_get("llm_completion_tokens")?,
                    tts_characters: r.try_get("tts_characters")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn record(call: &str, agent: Option<&str>, channel: &str, started_at: i64) -> BillingRecord {
        BillingRecord {
            call_id: call.into(),
            tenant_id: "t1".into(),
            agent_id: agent.map(Into::into),
            channel: channel.into(),
            started_at,
            duration_ms: 61_000,
            billable_seconds: 120,
            rate_per_minute_micros: 20_000,
            amount_micros: 40_000,
            stt_audio_ms: 30_000,
            llm_prompt_tokens: 500,
            llm_completion_tokens: 50,
            tts_characters: 300,
        }
    }

    #[tokio::test]
    async fn billing_is_recorded_once_and_summed_by_agent_and_channel() {
        let (store, _dir) = testing::sqlite().await;
        store.record_billing(&record("c1", Some("a1"), "sip", 1000)).await.unwrap();
        store.record_billing(&record("c1", Some("a1"), "sip", 1000)).await.unwrap();
        store.record_billing(&record("c2", Some("a1"), "sip", 2000)).await.unwrap();
        store.record_billing(&record("c3", None, "chat", 3000)).await.unwrap();
        store.record_billing(&record("c4", Some("a1"), "sip", 9000)).await.unwrap();
        let rows = store.usage("t1", 0, 5000, None).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let sip = rows.iter().find(|r| r.channel == "sip").unwrap();
        assert_eq!(
            (sip.calls, sip.billable_seconds, sip.amount_micros, sip.tts_characters),
            (2, 240, 80_000, 600)
        );
        let a1 = store.usage("t1", 0, 5000, Some("a1")).await.unwrap();
        assert_eq!(a1.len(), 1);
        let configured = store.usage("t1", 0, 5000, Some("")).await.unwrap();
        assert_eq!(configured[0].channel, "chat");
        assert!(store.usage("t2", 0, 5000, None).await.unwrap().is_empty(), "another tenant's is not ours");
    }
}
