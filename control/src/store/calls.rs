//! Finished calls (and chats): a summary row to filter on, the session's
//! log as JSON, newest first with cursor pagination.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// A finished call to record (also as JSON, in the spool while the database is away).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewCall {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    pub channel: String,
    pub direction: String,
    pub status: String,
    pub caller: Option<String>,
    pub callee: Option<String>,
    /// The carrier's id of the call (a SIP Call-ID, Twilio's `callSid`).
    pub external_id: Option<String>,
    /// The LiveKit room a dispatched call served.
    #[serde(default)]
    pub room: Option<String>,
    pub started_at: i64,
    pub ended_at: i64,
    pub duration_ms: i64,
    pub recording: Option<String>,
    /// The session's log, JSON.
    pub detail: String,
}

/// A stored call.
pub type CallRow = NewCall;

/// Which calls to list. Times are Unix milliseconds, `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Continue after this call: its `(started_at, id)`.
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

/// One page of calls, and where the next one starts.
#[derive(Debug, Clone)]
pub struct CallPage {
    pub calls: Vec<CallRow>,
    pub next: Option<(i64, String)>,
}

/// The columns [`call_row`] reads (a macro, so queries stay literals).
macro_rules! columns {
    () => {
        "id, tenant_id, agent_id, campaign_id, channel, direction, status, caller, callee, \
         started_at, ended_at, duration_ms, recording, detail, external_id, room"
    };
    // Lists leave the transcripts in the database: `detail` comes back empty.
    (summary) => {
        "id, tenant_id, agent_id, campaign_id, channel, direction, status, caller, callee, \
         started_at, ended_at, duration_ms, recording, CAST('' AS TEXT) AS detail, external_id, room"
    };
}

fn call_row(r: &AnyRow) -> Result<CallRow, sqlx::Error> {
    Ok(NewCall {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        agent_id: r.try_get("agent_id")?,
        campaign_id: r.try_get("campaign_id")?,
        channel: r.try_get("channel")?,
        direction: r.try_get("direction")?,
        status: r.try_get("status")?,
        caller: r.try_get("caller")?,
        callee: r.try_get("callee")?,
        external_id: r.try_get("external_id")?,
        room: r.try_get("room")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        duration_ms: r.try_get("duration_ms")?,
        recording: r.try_get("recording")?,
        detail: r.try_get("detail")?,
    })
}

impl Store {
    /// Records a finished call (again: the same id replaces the record).
    ///
    /// # Errors
    /// The database fails.
    pub async fn save_call(&self, c: &NewCall) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO calls (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (id) DO UPDATE SET status = $7, ended_at = $11, duration_ms = $12, recording = $13, detail = $14"
        ))
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(c.agent_id.as_deref())
        .bind(c.campaign_id.as_deref())
        .bind(&c.channel)
        .bind(&c.direction)
        .bind(&c.status)
        .bind(c.caller.as_deref())
        .bind(c.callee.as_deref())
        .bind(c.started_at)
        .bind(c.ended_at)
        .bind(c.duration_ms)
        .bind(c.recording.as_deref())
        .bind(&c.detail)
        .bind(c.external_id.as_deref())
        .bind(c.room.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Calls whose record still says they are running (`in_progress`), oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn calls_in_progress(&self) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM calls WHERE status = 'in_progress' ORDER BY started_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(call_row).collect::<Result<_, _>>()?)
    }

    /// Points a call's record at where its recording now is.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_recording(&self, id: &str, recording: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET recording = $1 WHERE id = $2")
            .bind(recording)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Calls whose recording is still a local file: `(id, file name)`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn local_recordings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recording FROM calls WHERE recording IS NOT NULL AND recording NOT LIKE 's3://%'",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("recording")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// One of the tenant's calls.
    ///
    /// # Errors
    /// The database fails.
    pub async fn call(&self, tenant_id: &str, id: &str) -> Result<Option<CallRow>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM calls WHERE id = $1 AND tenant_id = $2"))
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(call_row).transpose()?)
    }

    /// The tenant's calls matching `filter`, newest first, without their
    /// `detail` (read one call for that).
    ///
    /// # Errors
    /// The database fails.
    pub async fn calls(&self, tenant_id: &str, filter: &CallFilter) -> Result<CallPage, StoreError> {
        let mut sql = concat!("SELECT ", columns!(summary), " FROM calls WHERE tenant_id = $1").to_owned();
        let mut n = 1;
        let mut param = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        let f = filter;
        for (value, clause) in [
            (&f.agent_id, " AND agent_id = ?"),
            (&f.campaign_id, " AND campaign_id = ?"),
            (&f.channel, " AND channel = ?"),
            (&f.status, " AND status = ?"),
        ] {
            if value.is_some() {
                param(&mut sql, clause);
            }
        }
        if f.from.is_some() {
            param(&mut sql, " AND started_at >= ?");
        }
        if f.to.is_some() {
            param(&mut sql, " AND started_at < ?");
        }
        if f.after.is_some() {
            param(&mut sql, " AND (started_at < ?");
            param(&mut sql, " OR (started_at = ? AND");
            param(&mut sql, " id < ?))");
        }
        let limit = f.limit.clamp(1, 200);
        sql.push_str(&format!(" ORDER BY started_at DESC, id DESC LIMIT {}", limit + 1));
        // Only fixed fragments and `$N` placeholders went into `sql`; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id);
        for value in [&f.agent_id, &f.campaign_id, &f.channel, &f.status].into_iter().flatten() {
            q = q.bind(value);
        }
        for value in [f.from, f.to].into_iter().flatten() {
            q = q.bind(value);
        }
        if let Some((at, id)) = &f.after {
            q = q.bind(*at).bind(*at).bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut calls = rows.iter().map(call_row).collect::<Result<Vec<_>, _>>()?;
        let next = if calls.len() > limit as usize {
            calls.truncate(limit as usize);
            calls.last().map(|c| (c.started_at, c.id.clone()))
        } else {
            None
        };
        Ok(CallPage { calls, next })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    fn call(tenant: &str, id: &str, started_at: i64, channel: &str) -> NewCall {
        NewCall {
            id: id.into(),
            tenant_id: tenant.into(),
            agent_id: Some("agt_1".into()),
            campaign_id: None,
            channel: channel.into(),
            direction: "inbound".into(),
            status: "caller_hung_up".into(),
            caller: Some("+15550100".into()),
            callee: None,
            external_id: Some(format!("{id}@carrier")),
            room: None,
            started_at,
            ended_at: started_at + 1000,
            duration_ms: 1000,
            recording: None,
            detail: "{}".into(),
        }
    }

    #[tokio::test]
    async fn pages_walk_every_call_once_newest_first_within_the_tenant() {
        let (store, _dir) = testing::sqlite().await;
        // Equal start times too: the id breaks the tie.
        for i in 0..25 {
            let channel = if i % 2 == 0 { "sip" } else { "webrtc" };
            store.save_call(&call("t1", &format!("c{i:02}"), 1000 + i / 3, channel)).await.unwrap();
        }
        store.save_call(&call("t2", "other", 5000, "sip")).await.unwrap();
        let mut seen = Vec::new();
        let mut filter = CallFilter { limit: 7, ..CallFilter::default() };
        loop {
            let page = store.calls("t1", &filter).await.unwrap();
            assert!(page.calls.len() <= 7);
            seen.extend(page.calls.iter().map(|c| (c.started_at, c.id.clone())));
            match page.next {
                Some(next) => filter.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first: {seen:?}");
        let sip = store
            .calls(
                "t1",
                &CallFilter {
                    channel: Some("sip".into()),
                    from: Some(1003),
                    limit: 50,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(sip.calls.iter().all(|c| c.channel == "sip" && c.started_at >= 1003));
        assert_eq!(sip.calls.len(), 8);
        assert!(store.call("t2", "c00").await.unwrap().is_none());
    }
}
