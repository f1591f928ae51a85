//! Campaigns and their numbers. A number is claimed for dialling with a
//! lease, so two schedulers (two nodes) never dial it at once and a node
//! that dies mid-call gives it back when the lease runs out.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: Option<String>,
    pub name: String,
    pub status: String,
    pub window_start: String,
    pub window_end: String,
    pub time_zone: String,
    /// ISO weekdays, e.g. `1,2,3,4,5`.
    pub days: String,
    pub max_concurrent: u32,
    pub ring_timeout_s: u32,
    /// JSON.
    pub retry: String,
    /// JSON; `None`: the agent's.
    pub answering_machine: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One number of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRow {
    pub number: String,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_call_id: Option<String>,
    pub last_result: Option<String>,
    pub updated_at: i64,
}

/// The columns [`campaign_row`] reads (a macro, so queries stay literals).
macro_rules! columns {
    () => {
        "id, tenant_id, agent_id, name, status, window_start, window_end, time_zone, days, \
         max_concurrent, ring_timeout_s, retry, answering_machine, created_at, updated_at"
    };
}

fn campaign_row(r: &AnyRow) -> Result<CampaignRow, sqlx::Error> {
    let small = |c: &str| r.try_get::<i64, _>(c).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    Ok(CampaignRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        agent_id: r.try_get("agent_id")?,
        name: r.try_get("name")?,
        status: r.try_get("status")?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        time_zone: r.try_get("time_zone")?,
        days: r.try_get("days")?,
        max_concurrent: small("max_concurrent")?,
        ring_timeout_s: small("ring_timeout_s")?,
        retry: r.try_get("retry")?,
        answering_machine: r.try_get("answering_machine")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Inserts `numbers` pending, skipping those the campaign has; how many were new.
async fn insert_numbers(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    campaign_id: &str,
    numbers: &[String],
) -> Result<u64, StoreError> {
    let now = now_ms();
    let mut added = 0;
    for number in numbers {
        let done = sqlx::query(
            "INSERT INTO campaign_numbers (campaign_id, number, status, attempts, next_attempt_at, lease_until, \
             updated_at) VALUES ($1, $2, 'pending', 0, 0, 0, $3) ON CONFLICT (campaign_id, number) DO NOTHING",
        )
        .bind(campaign_id)
        .bind(number)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        added += done.rows_affected();
    }
    Ok(added)
}

impl Store {
    /// Stores a new campaign with its first numbers, in one transaction: the
    /// scheduler must never see a running campaign before its numbers (it
    /// would find nothing left to dial and complete it).
    ///
    /// # Errors
    /// The database fails.
    pub async fn create_campaign(&self, c: &CampaignRow, numbers: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO campaigns (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.agent_id)
        .bind(&c.name)
        .bind(&c.status)
        .bind(&c.window_start)
        .bind(&c.window_end)
        .bind(&c.time_zone)
        .bind(&c.days)
        .bind(i64::from(c.max_concurrent))
        .bind(i64::from(c.ring_timeout_s))
        .bind(&c.retry)
        .bind(&c.answering_machine)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_numbers(&mut tx, &c.id, numbers).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds `numbers` to a campaign, pending; a number it has already is
    /// skipped. How many were added.
    ///
    /// # Errors
    /// The database fails.
    pub async fn add_numbers(&self, campaign_id: &str, numbers: &[String]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = insert_numbers(&mut tx, campaign_id, numbers).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// One of the tenant's campaigns.
    ///
    /// # Errors
    /// The database fails.
    pub async fn campaign(&self, tenant_id: &str, id: &str) -> Result<Option<CampaignRow>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", columns!(), " FROM campaigns WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(campaign_row).transpose()?)
    }

    /// The tenant's campaigns, newest first (at most 500).
    ///
    /// # Errors
    /// The database fails.
    pub async fn campaigns(&self, tenant_id: &str) -> Result<Vec<CampaignRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM campaigns WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(campaign_row).collect::<Result<_, _>>()?)
    }

    /// Every running campaign, of every tenant (for the scheduler).
    ///
    /// # Errors
    /// The database fails.
    pub async fn running_campaigns(&self) -> Result<Vec<CampaignRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM campaigns WHERE status = 'running' ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(campaign_row).collect::<Result<_, _>>()?)
    }

    /// Sets a campaign's status if it is now one of `from`; true when it changed.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_campaign_status(
        &self,
        tenant_id: &str,
        id: &str,
        from: &[&str],
        to: &str,
    ) -> Result<bool, StoreError> {
        let mut changed = false;
        for current in from {
            let done = sqlx::query(
                "UPDATE campaigns SET status = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2 AND status = $3",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(current)
            .bind(to)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
            changed |= done.rows_affected() > 0;
        }
        if changed && to == "cancelled" {
            sqlx::query(
                "UPDATE campaign_numbers SET status = 'cancelled', updated_at = $2 \
                 WHERE campaign_id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        }
        Ok(changed)
    }

    /// A campaign's numbers (at most `limit`, in order), and how many are in each status.
    ///
    /// # Errors
    /// The database fails.
    pub async fn campaign_numbers(
        &self,
        campaign_id: &str,
        limit: u32,
    ) -> Result<(Vec<NumberRow>, Vec<(String, i64)>), StoreError> {
        let rows = sqlx::query(
            "SELECT number, status, attempts, next_attempt_at, last_call_id, last_result, updated_at \
             FROM campaign_numbers WHERE campaign_id = $1 ORDER BY number LIMIT $2",
        )
        .bind(campaign_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let numbers = rows
            .iter()
            .map(|r| {
                Ok(NumberRow {
                    number: r.try_get("number")?,
                    status: r.try_get("status")?,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_call_id: r.try_get("last_call_id")?,
                    last_result: r.try_get("last_result")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let counts = sqlx::query(
            "SELECT status, CAST(COUNT(*) AS BIGINT) AS n FROM campaign_numbers WHERE campaign_id = $1 \
             GROUP BY status ORDER BY status",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((numbers, counts))
    }

    /// How many of a campaign's numbers are being dialled now (leases that ran out not counted).
    ///
    /// # Errors
    /// The database fails.
    pub async fn dialing(&self, campaign_id: &str) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM campaign_numbers \
             WHERE campaign_id = $1 AND status = 'dialing' AND lease_until > $2",
        )
        .bind(campaign_id)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Claims the campaign's next due number for dialling, for `lease_ms`;
    /// its number and attempt (1 for the first); `None` when none is due.
    ///
    /// # Errors
    /// The database fails.
    pub async fn claim_number(
        &self,
        campaign_id: &str,
        lease_ms: i64,
    ) -> Result<Option<(String, u32)>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE campaign_numbers SET status = 'dialing', attempts = attempts + 1, lease_until = $3, updated_at = $2 \
             WHERE campaign_id = $1 AND number = ( \
                 SELECT number FROM campaign_numbers WHERE campaign_id = $1 \
                 AND ((status = 'pending' AND next_attempt_at <= $2) OR (status = 'dialing' AND lease_until <= $2)) \
                 ORDER BY next_attempt_at, number LIMIT 1) \
             AND ((status = 'pending' AND next_attempt_at <= $2) OR (status = 'dialing' AND lease_until <= $2)) \
             RETURNING number, attempts",
        )
        .bind(campaign_id)
        .bind(now)
        .bind(now + lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((r.try_get("number")?, u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX)))
        })
        .transpose()
    }

    /// Records a dialled number's outcome: `status` (`pending` with
    /// `next_attempt_at` to try again), the call and what happened.
    ///
    /// # Errors
    /// The database fails.
    pub async fn number_outcome(
        &self,
        campaign_id: &str,
        number: &str,
        status: &str,
        next_attempt_at: i64,
        call_id: Option<&str>,
        result: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE campaign_numbers SET status = $3, next_attempt_at = $4, lease_until = 0, \
             last_call_id = COALESCE($5, last_call_id), last_result = $6, updated_at = $7 \
             WHERE campaign_id = $1 AND number = $2",
        )
        .bind(campaign_id)
        .bind(number)
        .bind(status)
        .bind(next_attempt_at)
        .bind(call_id)
        .bind(result)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a running campaign completed when none of its numbers is left
    /// to dial; true when it did.
    ///
    /// # Errors
    /// The database fails.
    pub async fn complete_campaign_if_done(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE campaigns SET status = 'completed', updated_at = $2 WHERE id = $1 AND status = 'running' \
             AND NOT EXISTS (SELECT 1 FROM campaign_numbers WHERE campaign_id = $1 \
                             AND status IN ('pending', 'dialing'))",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    async fn campaign(store: &Store) -> CampaignRow {
        let tenant = store.tenant_named("acme").await.unwrap();
        let c = CampaignRow {
            id: "cmp_1".into(),
            tenant_id: tenant,
            agent_id: None,
            name: "Reminders".into(),
            status: "running".into(),
            window_start: "09:00".into(),
            window_end: "17:00".into(),
            time_zone: "UTC".into(),
            days: "1,2,3,4,5".into(),
            max_concurrent: 2,
            ring_timeout_s: 30,
            retry: "{}".into(),
            answering_machine: None,
            created_at: 1,
            updated_at: 1,
        };
        store.create_campaign(&c, &[]).await.unwrap();
        let added = store
            .add_numbers(&c.id, &["+1555001".into(), "+1555002".into(), "+1555001".into()])
            .await
            .unwrap();
        assert_eq!(added, 2);
        c
    }

    #[tokio::test]
    async fn numbers_are_claimed_once_each_and_retried_when_due() {
        let (store, _dir) = testing::sqlite().await;
        let c = campaign(&store).await;
        let first = store.claim_number(&c.id, 60_000).await.unwrap().expect("due");
        let second = store.claim_number(&c.id, 60_000).await.unwrap().expect("due");
        assert_ne!(
            first.0, second.0,
            "a duplicate number is kept once, and a claimed one is not handed out again"
        );
        assert!(store.claim_number(&c.id, 60_000).await.unwrap().is_none());
        assert_eq!(store.dialing(&c.id).await.unwrap(), 2);
        store.number_outcome(&c.id, &first.0, "pending", 0, Some("out-1"), "busy (486)").await.unwrap();
        store.number_outcome(&c.id, &second.0, "completed", 0, Some("out-2"), "completed").await.unwrap();
        let again = store.claim_number(&c.id, 60_000).await.unwrap().expect("retry due");
        assert_eq!((again.0.as_str(), again.1), (first.0.as_str(), 2));
        assert!(!store.complete_campaign_if_done(&c.id).await.unwrap(), "one still dialing");
        store.number_outcome(&c.id, &again.0, "busy", 0, Some("out-3"), "busy (486)").await.unwrap();
        assert!(store.complete_campaign_if_done(&c.id).await.unwrap());
        let (numbers, counts) = store.campaign_numbers(&c.id, 10).await.unwrap();
        assert_eq!(numbers[0].last_call_id.as_deref(), Some("out-3"));
        assert_eq!(counts, [("busy".to_owned(), 1), ("completed".to_owned(), 1)]);
    }

    #[tokio::test]
    async fn a_cancelled_campaign_cancels_its_pending_numbers_and_a_lost_lease_comes_back() {
        let (store, _dir) = testing::sqlite().await;
        let c = campaign(&store).await;
        // Claimed for 0 ms: as if the node died mid-call.
        let lost = store.claim_number(&c.id, 0).await.unwrap().expect("due");
        assert_eq!(store.dialing(&c.id).await.unwrap(), 0, "a lost lease is not counted as dialing");
        let mut claimed = vec![store.claim_number(&c.id, 60_000).await.unwrap().expect("due").0];
        claimed.push(store.claim_number(&c.id, 60_000).await.unwrap().expect("the lost one again").0);
        assert!(claimed.contains(&lost.0));
        assert!(
            store
                .set_campaign_status(&c.tenant_id, &c.id, &["running", "paused"], "cancelled")
                .await
                .unwrap()
        );
        assert!(
            !store.set_campaign_status(&c.tenant_id, &c.id, &["running", "paused"], "running").await.unwrap()
        );
        assert!(store.campaign(&c.tenant_id, &c.id).await.unwrap().is_some());
        assert!(store.campaign("another", &c.id).await.unwrap().is_none());
    }
}
