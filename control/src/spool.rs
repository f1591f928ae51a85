//! Finished calls whose record could not be written (the database away)
//! wait here, one JSON file each in `recordings/spool/`, beside their
//! recordings; they are written, uploaded and handed to post-call work once
//! the database answers again: checked every 10 seconds, and at start-up.

use crate::store::NewCall;
use std::path::PathBuf;

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
        self.dir.join(format!("{}.json", voxgate_calls::hooks::file_stem(call_id)))
    }

    /// The records waiting, each with its file (for [`Spool::done`]). A
    /// file that does not read (not ours, or cut short by a crash) is set
    /// aside, never retried forever.
    pub async fn waiting(&self) -> Vec<(PathBuf, NewCall)> {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else { return Vec::new() };
        let mut waiting = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match tokio::fs::read(&path).await.map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(record)) => waiting.push((path, record)),
                Ok(Err(e)) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable spooled call record; set aside");
                    let _ = tokio::fs::rename(&path, path.with_extension("unreadable")).await;
                }
                Err(_) => {}
            }
        }
        waiting
    }

    /// A waiting record was written to the database: its file goes.
    pub async fn done(&self, file: &std::path::Path) {
        let _ = tokio::fs::remove_file(file).await;
    }
}
