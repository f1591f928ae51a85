//! Records: tenants, users, API keys, agents and calls, in SQLite (the
//! embedded default, WAL mode) or PostgreSQL (several nodes), through one
//! `sqlx` pool and one set of migrations (`media-server/migrations/`).
//!
//! Queries are written once for both: `$N` parameters (SQLite reads them
//! too), plain `TEXT`/`BIGINT` columns, times in Unix milliseconds.

mod agents;
mod calls;
mod campaigns;
mod jobs;
mod numbers;
mod plans;
mod post_call;
mod tenants;
mod whatsapp;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use agents::AgentRow;
pub use calls::{CallFilter, CallRow, NewCall};
pub use campaigns::{CampaignRow, NumberRow};
pub use jobs::{LeasedJob, NewJob};
pub use numbers::NumberAssignment;
pub use plans::{NewSignup, Provision, Provisioned, SignupRow, TenantPlan};
pub use post_call::{BillingRecord, Delivery, EmailAttempt, ReportFilter, ReportRow, UsageRow};
pub use tenants::{ApiKeyRow, NewApiKey, UserRow};
pub use whatsapp::{ConversationRow, ConversationStatus, MessageRow, WhatsAppApp, WhatsAppNumber};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached, or a query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique value (an email, a phone number) is taken.
    #[error("{what} is already in use")]
    Conflict { what: String },
    /// A tenant tried to route a phone number the operator did not give it.
    #[error("number {number} is not assigned to this tenant")]
    NotAssigned { number: String },
    /// A stored document no longer reads (e.g. written by a newer version).
    #[error("stored {what} is unreadable: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// `database_url` names no supported database.
    #[error("database_url must start with sqlite:// or postgres://, not {0:?}")]
    UnsupportedUrl(String),
}

/// The records, shared by every task (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

/// Now, in Unix milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new random id with a type prefix, e.g. `agt_5f0c1a...`.
pub use voxgate_domain::random_id as new_id;

impl Store {
    /// Opens (creating if need be) the database at `url` and migrates it.
    ///
    /// # Errors
    /// The URL is not SQLite or PostgreSQL, the database cannot be reached,
    /// or its schema cannot be migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let url = if sqlite { sqlite_url(url)? } else { url.to_owned() };
        let pool = AnyPoolOptions::new()
            // SQLite has one writer; more connections only queue behind it.
            .max_connections(if sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // With WAL, NORMAL syncs at checkpoints rather than at every
                        // commit: a power cut may lose the last commits, never corrupts.
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            // A database that is away fails requests in seconds, not minutes.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await?;
        if sqlite {
            // Readers never wait for the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Whether the database answers (for `/readyz`).
    ///
    /// # Errors
    /// It does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A server-wide setting, made with `make` the first time it is asked
    /// for (the first node to ask wins; the others read its value).
    ///
    /// # Errors
    /// The database fails.
    pub async fn setting_or_init(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
            .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }
}

/// `sqlite://PATH` with the file (and its folder) created when missing.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" {
        // Each pooled connection would get its own empty database.
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    if let Some(dir) = std::path::Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
        // A missing folder shows as the connection error that follows.
        let _ = std::fs::create_dir_all(dir);
    }
    Ok(if path.contains("mode=") {
        format!("sqlite://{path}")
    } else if path.contains('?') {
        format!("sqlite://{path}&mode=rwc")
    } else {
        format!("sqlite://{path}?mode=rwc")
    })
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict { what: what.into() },
        _ => StoreError::Database(e),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A store to test against: SQLite in a temporary folder. PostgreSQL is
    //! tested end to end by `tests/control.rs`, which starts a real server
    //! (`tests/common/postgres.rs`) and runs the same operator story on both.

    use super::Store;

    /// A fresh SQLite store, and the folder that holds it (removed on drop).
    pub async fn sqlite() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.expect("sqlite store");
        (store, dir)
    }
}
