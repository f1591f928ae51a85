//! Finished calls whose record could not be written (the database away)
//! wait here, one JSON file each in `recordings/spool/`, beside their
//! recordings; they are written, uploaded and handed to post-call work once
//! the database answers again: checked every 10 seconds, and at start-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::calls::CallContext;
use crate::store::NewCall;

/// Where call records wait.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool of the recordings folder `recordings_dir`.
    #[must_use]
    pub fn new(recordings_dir: &std::path::Path) -> Self {
        Self { dir: recordings_dir.join("spool") }
    }

    /// Keeps `record` until the database is back: written whole or not at
    /// all (a temporary file, then renamed).
    ///
    /// # Errors
    /// The disk refuses it.
    pub async fn keep(&self, record: &NewCall) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        let file = self.file(&record.id);
        let tmp = file.with_extension("json.tmp");
        tokio::fs::write(&tmp, json).await?;
        tokio::fs::rename(&tmp, &file).await
    }

    fn file(&self, call_id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", crate::calls::file_stem(call_id)))
    }

    /// Writes every waiting record; stops at the first the database refuses
    /// (it is still away). How many were written.
    pub async fn flush(&self, ctx: &CallContext) -> usize {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else { return 0 };
        let mut written = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let record: NewCall = match tokio::fs::read(&path).await.map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    // Not ours, or cut short by a crash: moved aside, never retried forever.
                    tracing::error!(file = %path.display(), error = %e, "unreadable spooled call record; set aside");
                    let _ = tokio::fs::rename(&path, path.with_extension("unreadable")).await;
                    continue;
                }
                Err(_) => continue,
            };
            if let Err(e) = ctx.store.save_call(&record).await {
                tracing::debug!(error = %e, "database still away; spooled calls wait");
                break;
            }
            let _ = tokio::fs::remove_file(&path).await;
            tracing::info!(call_id = %record.id, "spooled call record written");
            crate::calls::after_saved(ctx, &record).await;
            written += 1;
        }
        written
    }

    /// Flushes the spool every 10 seconds until `stop`.
    pub fn spawn_flusher(ctx: Arc<CallContext>, stop: CancellationToken) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
                ctx.spool.flush(&ctx).await;
            }
        });
    }
}
