//! What every call leaves behind, whatever carried it (SIP, a websocket
//! stream, WebRTC): its stereo recording and, next to it, its log as JSON.

use std::path::PathBuf;

use serde::Serialize;
use voxgate_pipeline::session::CallLog;

use crate::agent::Agent;
use crate::config::Config;

/// What starting a call needs, whatever carries it.
#[derive(Debug)]
pub struct CallContext {
    pub config: Config,
    pub agent: Agent,
}

/// A finished call's log file: who carried it, and the session's log.
#[derive(Debug, Serialize)]
struct CallRecord<'a> {
    id: &'a str,
    /// `sip`, `twilio`, `websocket`, ...
    channel: &'a str,
    #[serde(flatten)]
    log: &'a CallLog,
}

/// Where a call's recording goes (its log goes next to it, as JSON). The
/// folder is made at start-up ([`prepare`]), so starting a call touches no disk.
pub fn recording_path(config: &Config, call_id: &str) -> PathBuf {
    let safe: String = call_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .take(96)
        .collect();
    config.storage.recordings_dir.join(format!("{safe}.wav"))
}

/// Makes the recordings folder.
///
/// # Errors
/// It cannot be made.
pub async fn prepare(config: &Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dir = &config.storage.recordings_dir;
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("making {}", dir.display()))
}

/// A new call id for `channel`, e.g. `ws-5f0c...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Writes a finished call's log next to its recording (whole or not at
/// all: written aside, then renamed into place).
pub async fn save_log(config: &Config, call_id: &str, channel: &str, log: &CallLog) {
    tracing::info!(call_id = %call_id, channel, end = ?log.end, turns = log.latencies.len(), "call ended");
    let write = async {
        let path = recording_path(config, call_id).with_extension("json");
        // Made at start-up; made again if someone removed it since.
        tokio::fs::create_dir_all(&config.storage.recordings_dir).await?;
        let aside = path.with_extension("json.part");
        let record = CallRecord { id: call_id, channel, log };
        tokio::fs::write(&aside, serde_json::to_vec_pretty(&record)?).await?;
        tokio::fs::rename(&aside, &path).await?;
        anyhow::Ok(())
    };
    if let Err(e) = write.await {
        tracing::warn!(call_id = %call_id, error = %e, "call log not written");
    }
}

/// Binds a media (RTP) socket on a free even port of the configured range.
pub async fn bind_media_port(config: &Config, ip: std::net::IpAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    let (min, max) = (config.rtp.port_min, config.rtp.port_max);
    let span = u32::from(max - min) / 2;
    // From a random pair, so busy ports are rarely tried first.
    let start: u32 = rand::random();
    for i in 0..span.min(500) {
        let port = min + (((start.wrapping_add(i)) % span.max(1)) * 2) as u16;
        if let Ok(s) = tokio::net::UdpSocket::bind(std::net::SocketAddr::new(ip, port)).await {
            return Ok(s);
        }
    }
    anyhow::bail!("no free RTP port in {min}..{max}")
}
