//! The record every call leaves, whatever carried it: written when the
//! call is answered (so a crash cannot lose it) and again when it ends,
//! then its recording's upload and its post-call work. The media plane
//! reports calls here through [`CallHooks`].

use std::path::PathBuf;
use std::sync::Arc;

use voxgate_calls::CallHooks;
use voxgate_calls::hooks::recording_path;
use voxgate_domain::{CallInfo, CallStatus};
use voxgate_pipeline::session::{CallEventKind, CallLog, EndReason};

use crate::store::{NewCall, Store};

/// Keeps calls' records.
#[derive(Debug)]
pub struct Ledger {
    pub store: Store,
    /// The configured agent's tenant.
    pub default_tenant: String,
    /// Where recordings end up, and links to them.
    pub recordings: Arc<crate::recordings::Recordings>,
    /// Analytics, billing, email, CRM and webhooks around each call.
    pub post_call: Arc<crate::post_call::PostCallWork>,
    /// Call records waiting for the database.
    pub spool: crate::spool::Spool,
    /// Where the media plane writes recordings.
    pub recordings_dir: PathBuf,
    /// The longest call allowed, in seconds (`[agent]`, at least an hour
    /// when the records of interrupted calls are closed).
    pub max_call_duration_s: u32,
}

#[async_trait::async_trait]
impl CallHooks for Ledger {
    async fn started(&self, call: &CallInfo) {
        let now = crate::store::now_ms();
        let record = NewCall {
            status: CallStatus::InProgress.as_str().to_owned(),
            started_at: now,
            ended_at: now,
            duration_ms: 0,
            recording: None,
            detail: "{}".to_owned(),
            ..self.new_call(call)
        };
        if let Err(e) = self.store.save_call(&record).await {
            tracing::warn!(call_id = %call.id, error = %e, "call record not saved at its start");
        }
        self.post_call.call_started(call).await;
    }

    async fn ended(&self, call: &CallInfo, log: &CallLog) {
        self.save_log(call, log).await;
    }
}

impl Ledger {
    fn new_call(&self, call: &CallInfo) -> NewCall {
        NewCall {
            id: call.id.to_string(),
            tenant_id: call.tenant_id.as_deref().unwrap_or(&self.default_tenant).to_owned(),
            agent_id: call.agent_id.as_ref().map(ToString::to_string),
            campaign_id: call.campaign_id.clone(),
            channel: call.channel.as_str().to_owned(),
            direction: call.direction.as_str().to_owned(),
            status: String::new(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            external_id: call.external_id.clone(),
            room: call.room.clone(),
            started_at: 0,
            ended_at: 0,
            duration_ms: 0,
            recording: None,
            detail: String::new(),
        }
    }

    fn recording_path(&self, call_id: &str) -> PathBuf {
        recording_path(&self.recordings_dir, call_id)
    }

    /// Calls this node was running when it died (`kill -9`, a power cut): their
    /// records still say [`CallStatus::InProgress`]. Each whose recording is on this
    /// node's disk gets its recording made whole (to its last complete frame:
    /// at most the second the recorder held in memory is lost), its duration
    /// from it, and the status [`CallStatus::Interrupted`]; then, like any ended call, its
    /// upload and post-call work. A record with no recording here is another
    /// node's (or a chat): it is closed only once older than the longest call
    /// allowed (at least an hour) plus an hour; if that call was in fact still
    /// running, its end replaces the record. Run at start-up, before any call
    /// is taken.
    pub async fn recover_interrupted(&self) {
        let running = match self.store.calls_in_progress().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "could not look for calls interrupted by a crash");
                return;
            }
        };
        let stale_after_ms = i64::from(self.max_call_duration_s.max(3600)) * 1000 + 3_600_000;
        for mut row in running {
            // A WhatsApp conversation outlives restarts: it is in the store, and closes when idle.
            if row.channel == voxgate_domain::Channel::WhatsApp.as_str() {
                continue;
            }
            let path = self.recording_path(&row.id);
            let repaired = if path.exists() {
                repair(&row.id, &path).await
            } else if crate::store::now_ms() - row.started_at < stale_after_ms {
                continue;
            } else {
                None
            };
            let duration_ms = repaired.map_or(0, |r| i64::try_from(r.duration_ms).unwrap_or(i64::MAX));
            row.status = CallStatus::Interrupted.as_str().to_owned();
            row.duration_ms = duration_ms;
            row.ended_at = row.started_at + duration_ms;
            row.recording = repaired.and_then(|_| path.file_name().map(|n| n.to_string_lossy().into_owned()));
            // What the session knew died with it: the record keeps the time and the recording.
            let log = CallLog {
                transcript: Vec::new(),
                events: Vec::new(),
                latencies: Vec::new(),
                end: EndReason::Interrupted,
                duration_ms: u64::try_from(duration_ms).unwrap_or(0),
                recorded_ms: u64::try_from(duration_ms).unwrap_or(0),
                dropped_frames: 0,
                usage: voxgate_pipeline::session::Usage::default(),
            };
            row.detail = serde_json::to_string(&log).unwrap_or_default();
            tracing::warn!(call_id = %row.id, duration_ms, recording = row.recording.is_some(), "call interrupted by a restart");
            self.close(&row).await;
        }
    }
}

/// A recording cut short (a crash, a full disk) made whole: `None` if it
/// cannot be read as one.
async fn repair(call_id: &str, path: &std::path::Path) -> Option<voxgate_codecs::wav::Repaired> {
    let p = path.to_owned();
    match tokio::task::spawn_blocking(move || voxgate_codecs::wav::repair_header(&p)).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            tracing::warn!(call_id, error = %e, "a recording cut short is unreadable");
            None
        }
        Err(_) => None,
    }
}

impl Ledger {
    /// Stores an ended call's record; then its recording's upload and its post-call work.
    async fn close(&self, record: &NewCall) {
        if let Err(e) = self.store.save_call(record).await {
            // The database is away: the record waits in the spool, the recording on disk.
            match self.spool.keep(record).await {
                Ok(()) => {
                    tracing::warn!(call_id = %record.id, error = %e, "call record spooled until the database is back")
                }
                Err(io) => tracing::error!(call_id = %record.id, error = %e, spool = %io, "call record lost"),
            }
            return;
        }
        self.after_saved(record).await;
    }

    /// What follows a call's record being written: its recording's upload
    /// (when the recordings go to S3) and its post-call work.
    pub async fn after_saved(&self, record: &NewCall) {
        if record.recording.is_some() {
            let recording = self.recording_path(&record.id);
            self.recordings.upload_in_background(self.store.clone(), record.id.clone(), recording);
        }
        self.post_call.call_ended(record).await;
    }

    /// Records a finished call (its transcript, events and latencies) in the
    /// store. A database failure is logged, and the call's recording stays.
    async fn save_log(&self, call: &CallInfo, log: &CallLog) {
        let ended_at = crate::store::now_ms();
        let duration_ms = i64::try_from(log.duration_ms).unwrap_or(i64::MAX);
        let recording = self.recording_path(&call.id);
        let has_recording = usable_recording(&call.id, &recording, log).await;
        let record = NewCall {
            status: voxgate_calls::hooks::status(&log.end).as_str().to_owned(),
            started_at: ended_at - duration_ms,
            ended_at,
            duration_ms,
            recording: has_recording
                .then(|| recording.file_name().map(|n| n.to_string_lossy().into_owned()))
                .flatten(),
            // A CallLog is plain data.
            detail: serde_json::to_string(log).unwrap_or_default(),
            ..self.new_call(call)
        };
        self.close(&record).await;
    }
}

impl Ledger {
    /// Writes every record waiting in the spool; stops at the first the
    /// database refuses (it is still away). How many were written.
    pub async fn flush_spool(&self) -> usize {
        let mut written = 0;
        for (file, record) in self.spool.waiting().await {
            if let Err(e) = self.store.save_call(&record).await {
                tracing::debug!(error = %e, "database still away; spooled calls wait");
                break;
            }
            self.spool.done(&file).await;
            tracing::info!(call_id = %record.id, "spooled call record written");
            self.after_saved(&record).await;
            written += 1;
        }
        written
    }

    /// Flushes the spool every 10 seconds until `stop`.
    pub fn spawn_spool_flusher(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                }
                self.flush_spool().await;
            }
        });
    }
}

/// Whether a call left a recording worth keeping. One that failed on the
/// way (a full disk) is cut back to its last whole frame on disk, so it
/// plays; one with no audio in it is removed.
async fn usable_recording(call_id: &str, path: &std::path::Path, log: &CallLog) -> bool {
    let failed = log.events.iter().any(|e| matches!(e.kind, CallEventKind::RecordingFailed { .. }));
    if !failed {
        return log.recorded_ms > 0 || tokio::fs::try_exists(path).await.unwrap_or(false);
    }
    match repair(call_id, path).await {
        Some(r) if r.duration_ms > 0 => true,
        _ => {
            let _ = tokio::fs::remove_file(path).await;
            false
        }
    }
}
