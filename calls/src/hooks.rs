//! How the media plane reports its calls: the control plane keeps the
//! records, the recordings' uploads and the work after each call. Both
//! name a call's recording the same way ([`recording_path`]).

use std::path::{Path, PathBuf};

use voxgate_domain::{CallInfo, CallStatus};
use voxgate_pipeline::session::{CallLog, EndReason};

/// Told of each call's start and end, whatever carried it.
#[async_trait::async_trait]
pub trait CallHooks: Send + Sync + std::fmt::Debug {
    /// A call was answered: its record should say so at once (so a crash
    /// cannot lose it).
    async fn started(&self, call: &CallInfo);

    /// A call ended, leaving `log` and, when it recorded audio, its
    /// recording at [`recording_path`].
    async fn ended(&self, call: &CallInfo, log: &CallLog);
}

/// Where call `call_id`'s recording goes in `dir`. The media plane
/// writes it there while the call runs; the control plane keeps it.
#[must_use]
pub fn recording_path(dir: &Path, call_id: &str) -> PathBuf {
    dir.join(format!("{}.wav", file_stem(call_id)))
}

/// A call's id as a file name (its recording's, its spooled record's).
#[must_use]
pub fn file_stem(call_id: &str) -> String {
    call_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .take(96)
        .collect()
}

/// How a call that ended so is recorded.
#[must_use]
pub fn status(end: &EndReason) -> CallStatus {
    match end {
        EndReason::CallerHungUp => CallStatus::CallerHungUp,
        EndReason::NoMedia => CallStatus::NoMedia,
        EndReason::MaxSilence => CallStatus::MaxSilence,
        EndReason::MaxDuration => CallStatus::MaxDuration,
        EndReason::AgentEnded => CallStatus::AgentEnded,
        EndReason::ProviderFailure => CallStatus::ProviderFailure,
        EndReason::Transferred { .. } => CallStatus::Transferred,
        EndReason::Interrupted => CallStatus::Interrupted,
        EndReason::AnsweringMachine => CallStatus::AnsweringMachine,
        EndReason::MessageLeft => CallStatus::MessageLeft,
    }
}
