//! The queue of work after calls, kept in the database so it survives a
//! restart. A worker leases a due job; the job is done, or goes back on the
//! queue for later, or fails for good when its attempts run out. A lease that
//! runs out (its node died mid-job) makes the job due again: at least once.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, new_id, now_ms};

/// A job to add to the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What it does, once: a second job with the same key is not added.
    pub key: String,
    pub kind: String,
    pub tenant_id: String,
    pub call_id: Option<String>,
    /// JSON.
    pub payload: String,
    /// Not before this (Unix ms).
    pub run_at: i64,
}

/// A job a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: String,
    pub key: String,
    pub kind: String,
    pub tenant_id: String,
    pub call_id: Option<String>,
    pub payload: String,
    /// Including this one.
    pub attempts: u32,
}

/// A job as the API shows it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub key: String,
    pub kind: String,
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

impl Store {
    /// Adds `job` unless one with its key exists; true when added.
    ///
    /// # Errors
    /// The database fails.
    pub async fn enqueue(&self, job: &NewJob) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO jobs (id, key, kind, tenant_id, call_id, payload, status, attempts, run_at, lease_until, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, 0, $8, $8) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(new_id("job"))
        .bind(&job.key)
        .bind(&job.kind)
        .bind(&job.tenant_id)
        .bind(&job.call_id)
        .bind(&job.payload)
        .bind(job.run_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Leases the job due first, for `lease_ms`; `None` when none is due.
    ///
    /// The outer conditions repeat the inner ones so that, on PostgreSQL, a
    /// second node racing for the same row updates nothing (the row is
    /// re-checked after the first node's update commits).
    ///
    /// # Errors
    /// The database fails.
    pub async fn lease_job(&self, lease_ms: i64) -> Result<Option<LeasedJob>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $2 AND lease_until <= $2 \
                         ORDER BY run_at LIMIT 1) \
               AND status = 'queued' AND lease_until <= $2 \
             RETURNING id, key, kind, tenant_id, call_id, payload, attempts",
        )
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r: AnyRow| {
            Ok(LeasedJob {
                id: r.try_get("id")?,
                key: r.try_get("key")?,
                kind: r.try_get("kind")?,
                tenant_id: r.try_get("tenant_id")?,
                call_id: r.try_get("call_id")?,
                payload: r.try_get("payload")?,
                attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            })
        })
        .transpose()
    }

    /// Marks a leased job done.
    ///
    /// # Errors
    /// The database fails.
    pub async fn job_done(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET status = 'done', lease_until = 0, last_error = NULL, updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A leased job failed: due again at `retry_at`, or failed for good when `None`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn job_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<(), StoreError> {
        let (status, run_at) = match retry_at {
            Some(at) => ("queued", at),
            None => ("failed", now_ms()),
        };
        sqlx::query(
            "UPDATE jobs SET status = $2, run_at = $3, lease_until = 0, last_error = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(run_at)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes finished jobs (done or failed for good) last touched before
    /// `before` (Unix ms); how many.
    ///
    /// # Errors
    /// The database fails.
    pub async fn purge_jobs(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A call's jobs, oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn call_jobs(&self, tenant_id: &str, call_id: &str) -> Result<Vec<JobRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, kind, status, attempts, last_error, updated_at FROM jobs \
             WHERE tenant_id = $1 AND call_id = $2 ORDER BY created_at, key",
        )
        .bind(tenant_id)
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobRow {
                    key: r.try_get("key")?,
                    kind: r.try_get("kind")?,
                    status: r.try_get("status")?,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    last_error: r.try_get("last_error")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn job(key: &str, run_at: i64) -> NewJob {
        NewJob {
            key: key.into(),
            kind: "webhook".into(),
            tenant_id: "t1".into(),
            call_id: Some("c1".into()),
            payload: "{}".into(),
            run_at,
        }
    }

    #[tokio::test]
    async fn a_key_is_queued_once_and_leased_once() {
        let (store, _dir) = testing::sqlite().await;
        assert!(store.enqueue(&job("a", 0)).await.unwrap());
        assert!(!store.enqueue(&job("a", 0)).await.unwrap(), "the same key again adds nothing");
        let leased = store.lease_job(60_000).await.unwrap().expect("due");
        assert_eq!((leased.key.as_str(), leased.attempts), ("a", 1));
        assert!(store.lease_job(60_000).await.unwrap().is_none(), "a leased job is not handed out twice");
        store.job_done(&leased.id).await.unwrap();
        assert!(store.lease_job(60_000).await.unwrap().is_none());
        let jobs = store.call_jobs("t1", "c1").await.unwrap();
        assert_eq!(jobs[0].status, "done");
    }

    #[tokio::test]
    async fn a_failed_job_comes_back_when_due_and_a_lost_lease_runs_out() {
        let (store, _dir) = testing::sqlite().await;
        store.enqueue(&job("later", now_ms() + 60_000)).await.unwrap();
        assert!(store.lease_job(60_000).await.unwrap().is_none(), "not due yet");
        store.enqueue(&job("b", 0)).await.unwrap();
        let leased = store.lease_job(60_000).await.unwrap().expect("due");
        store.job_failed(&leased.id, "receiver said 500", Some(0)).await.unwrap();
        let again = store.lease_job(0).await.unwrap().expect("due again");
        assert_eq!((again.key.as_str(), again.attempts), ("b", 2));
        // Leased for 0 ms: as if its node died; another worker takes it.
        let third = store.lease_job(60_000).await.unwrap().expect("lease ran out");
        assert_eq!(third.attempts, 3);
        store.job_failed(&third.id, "gave up", None).await.unwrap();
        let jobs = store.call_jobs("t1", "c1").await.unwrap();
        let b = jobs.iter().find(|j| j.key == "b").unwrap();
        assert_eq!((b.status.as_str(), b.last_error.as_deref()), ("failed", Some("gave up")));
    }

    #[tokio::test]
    async fn finished_jobs_are_purged_after_their_time_and_queued_ones_never() {
        let (store, _dir) = testing::sqlite().await;
        for key in ["done", "failed", "queued"] {
            store.enqueue(&job(key, 0)).await.unwrap();
        }
        let first = store.lease_job(60_000).await.unwrap().unwrap();
        store.job_done(&first.id).await.unwrap();
        let second = store.lease_job(60_000).await.unwrap().unwrap();
        store.job_failed(&second.id, "gave up", None).await.unwrap();
        assert_eq!(store.purge_jobs(now_ms() - 60_000).await.unwrap(), 0, "not old enough");
        assert_eq!(store.purge_jobs(now_ms() + 1).await.unwrap(), 2);
        let left: Vec<String> =
            store.call_jobs("t1", "c1").await.unwrap().into_iter().map(|j| j.status).collect();
        assert_eq!(left, ["queued"]);
    }
}
