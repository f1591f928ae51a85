//! How the media plane reports its calls: the control plane keeps the
//! records, the recordings' uploads and the work after each call.

use voxgate_domain::CallInfo;
use voxgate_pipeline::session::CallLog;

/// Told of each call's start and end, whatever carried it.
#[async_trait::async_trait]
pub trait CallHooks: Send + Sync + std::fmt::Debug {
    /// A call was answered: its record should say so at once (so a crash
    /// cannot lose it).
    async fn started(&self, call: &CallInfo);

    /// A call ended, leaving `log` and, when it recorded audio, its
    /// recording at [`crate::calls::recording_path`].
    async fn ended(&self, call: &CallInfo, log: &CallLog);
}
