//! What every call leaves behind, whatever carried it (SIP, a websocket
//! stream, WebRTC, chat): its stereo recording, and its record in the store.

use std::path::PathBuf;

use voxgate_pipeline::session::{CallEventKind, CallLog, EndReason};

use crate::agent::Agent;
use crate::agent::registry::Agents;
use crate::config::Config;
use crate::store::{NewCall, Store};

/// What starting a call needs, whatever carries it.
#[derive(Debug)]
pub struct CallContext {
    pub config: Config,
    /// The agents, and which number reaches which.
    pub agents: std::sync::Arc<Agents>,
    pub store: Store,
    /// The configured agent's tenant.
    pub default_tenant: String,
    /// Where recordings end up, and links to them.
    pub recordings: std::sync::Arc<crate::recordings::Recordings>,
    /// Analytics, billing, email, CRM and webhooks around each call.
    pub post_call: std::sync::Arc<crate::post_call::PostCallWork>,
    /// How many calls run at once.
    pub admission: std::sync::Arc<crate::admission::Admission>,
    /// Call records waiting for the database.
    pub spool: crate::spool::Spool,
    /// Signs and checks the tokens that open one agent's media endpoints.
    pub tokens: crate::media_access::MediaTokens,
}

impl CallContext {
    /// What `?key=` / `?token=` prove on a public media endpoint.
    ///
    /// # Errors
    /// The refusal (401) to send.
    pub fn access(
        &self,
        key: &str,
        token: &str,
    ) -> Result<crate::media_access::Access, crate::media_access::Refused> {
        crate::media_access::Access::of(self.config.http.media_key.expose(), &self.tokens, key, token)
    }

    /// Whether `access` reaches `agent` (of its tenant).
    #[must_use]
    pub fn may_use(&self, access: &crate::media_access::Access, agent: &Agent) -> bool {
        access.may_use(agent, agent.tenant_id.as_deref().unwrap_or(&self.default_tenant))
    }
}

impl CallContext {
    /// A place for a call on `channel` to `agent`, within the limits.
    ///
    /// # Errors
    /// The server, the agent's tenant or the agent is at its limit.
    pub fn admit(
        &self,
        channel: &'static str,
        agent: &Agent,
    ) -> Result<crate::admission::Seat, crate::admission::Full> {
        let tenant = agent.tenant_id.as_deref().unwrap_or(&self.default_tenant);
        self.admission.admit(channel, tenant, agent.id.as_deref().map(|id| (id, agent.max_calls)))
    }
}

/// How a transport carries a call's audio.
#[derive(Debug, Clone)]
pub struct Carrier {
    pub codec: voxgate_codecs::Codec,
    pub arrival: voxgate_pipeline::call::Arrival,
    /// Whether the agent's keys go in the media (RFC 4733).
    pub telephone_events: bool,
    /// Hang up when no caller audio has come for this long.
    pub no_media: Option<std::time::Duration>,
}

impl CallContext {
    /// Starts the call core of call `id` to `agent`: its session, with a
    /// voice activity detector of its own and the recording in the
    /// recordings folder, on the audio `carrier` brings.
    ///
    /// # Errors
    /// The detector or the codec cannot be set up.
    pub fn start_core(
        &self,
        id: &str,
        agent: &Agent,
        carrier: Carrier,
    ) -> anyhow::Result<voxgate_pipeline::call::CallCore> {
        use voxgate_pipeline::call::{CallCore, CallParts};
        let session = voxgate_pipeline::session::SessionParts {
            config: agent.session.clone(),
            providers: agent.providers.clone(),
            vad: voxgate_pipeline::dsp::vad::build(&self.config.vad_config())?,
            recording: Some(recording_path(&self.config, id)),
        };
        let parts = CallParts {
            session,
            codec: carrier.codec,
            arrival: carrier.arrival,
            telephone_events: carrier.telephone_events,
            no_media: carrier.no_media,
            initial_timestamp: rand::random(),
        };
        Ok(CallCore::start(voxgate_pipeline::call::now(), parts)?)
    }

    /// The receive jitter buffer `[jitter]` describes.
    #[must_use]
    pub fn jitter(&self) -> voxgate_pipeline::dsp::jitter::JitterConfig {
        let j = &self.config.jitter;
        voxgate_pipeline::dsp::jitter::JitterConfig {
            start_delay_ms: j.start_delay_ms,
            min_delay_ms: j.min_delay_ms,
            max_delay_ms: j.max_delay_ms,
            ..Default::default()
        }
    }
}

/// Where a call's recording goes. The
/// folder is made at start-up ([`prepare`]), so starting a call touches no disk.
pub fn recording_path(config: &Config, call_id: &str) -> PathBuf {
    config.storage.recordings_dir.join(format!("{}.wav", file_stem(call_id)))
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

/// Makes the recordings folder.
///
/// # Errors
/// It cannot be made.
pub async fn prepare(config: &Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dir = &config.storage.recordings_dir;
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("making {}", dir.display()))
}

/// A new call's id, e.g. `call_5f0c...`: ours, unguessable, whatever
/// carried the call. The carrier's own id (a SIP Call-ID, Twilio's
/// `callSid`) is only an attribute ([`CallInfo::external_id`]): anyone can
/// choose or reuse one.
#[must_use]
pub fn new_id() -> String {
    crate::store::new_id("call")
}

/// Who carried a call, and between whom.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub id: String,
    /// `sip`, `webrtc`, `twilio`, `websocket`, `chat`.
    pub channel: &'static str,
    pub direction: Direction,
    /// The calling number or user, when known.
    pub caller: Option<String>,
    /// The called number or user, when known.
    pub callee: Option<String>,
    /// The tenant it belongs to; `None`: the configured agent's (the default tenant).
    pub tenant_id: Option<String>,
    /// The stored agent that took it; `None`: the configured agent.
    pub agent_id: Option<String>,
    /// The campaign that placed it.
    pub campaign_id: Option<String>,
    /// The carrier's id of the call: the SIP Call-ID, Twilio's `callSid`.
    pub external_id: Option<String>,
}

impl CallInfo {
    /// An inbound call on `channel` to `agent` (its tenant's).
    #[must_use]
    pub fn for_agent(id: &str, channel: &'static str, agent: &Agent) -> Self {
        Self {
            id: id.to_owned(),
            channel,
            direction: Direction::Inbound,
            caller: None,
            callee: None,
            tenant_id: agent.tenant_id.clone(),
            agent_id: agent.id.clone(),
            campaign_id: None,
            external_id: None,
        }
    }
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// As the API and webhooks say it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// A running call's status in its record; a call that was running when
/// its node died becomes [`INTERRUPTED`] when the node starts again.
pub const IN_PROGRESS: &str = "in_progress";
pub const INTERRUPTED: &str = "interrupted";

/// A call was answered by `agent`: its record says so at once (so a crash
/// cannot lose the call), and its `call.started` webhooks go out.
pub async fn started(ctx: &CallContext, call: &CallInfo, agent: &Agent) {
    let now = crate::store::now_ms();
    let record = NewCall {
        status: IN_PROGRESS.to_owned(),
        started_at: now,
        ended_at: now,
        duration_ms: 0,
        recording: None,
        detail: "{}".to_owned(),
        ..new_call(ctx, call)
    };
    if let Err(e) = ctx.store.save_call(&record).await {
        tracing::warn!(call_id = %call.id, error = %e, "call record not saved at its start");
    }
    ctx.post_call.call_started(call, agent).await;
}

fn new_call(ctx: &CallContext, call: &CallInfo) -> NewCall {
    NewCall {
        id: call.id.clone(),
        tenant_id: call.tenant_id.clone().unwrap_or_else(|| ctx.default_tenant.clone()),
        agent_id: call.agent_id.clone(),
        campaign_id: call.campaign_id.clone(),
        channel: call.channel.to_owned(),
        direction: call.direction.as_str().to_owned(),
        status: String::new(),
        caller: call.caller.clone(),
        callee: call.callee.clone(),
        external_id: call.external_id.clone(),
        started_at: 0,
        ended_at: 0,
        duration_ms: 0,
        recording: None,
        detail: String::new(),
    }
}

/// Calls this node was running when it died (`kill -9`, a power cut): their
/// records still say [`IN_PROGRESS`]. Each whose recording is on this
/// node's disk gets its recording made whole (to its last complete frame:
/// at most the second the recorder held in memory is lost), its duration
/// from it, and the status [`INTERRUPTED`]; then, like any ended call, its
/// upload and post-call work. A record with no recording here is another
/// node's (or a chat): it is closed only once older than the longest call
/// allowed (at least an hour) plus an hour; if that call was in fact still
/// running, its end replaces the record. Run at start-up, before any call
/// is taken.
pub async fn recover_interrupted(ctx: &CallContext) {
    let running = match ctx.store.calls_in_progress().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "could not look for calls interrupted by a crash");
            return;
        }
    };
    let stale_after_ms = i64::from(ctx.config.agent.max_call_duration_s.max(3600)) * 1000 + 3_600_000;
    for mut row in running {
        let path = recording_path(&ctx.config, &row.id);
        let repaired = if path.exists() {
            repair(&row.id, &path).await
        } else if crate::store::now_ms() - row.started_at < stale_after_ms {
            continue;
        } else {
            None
        };
        let duration_ms = repaired.map_or(0, |r| i64::try_from(r.duration_ms).unwrap_or(i64::MAX));
        row.status = INTERRUPTED.to_owned();
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
        close(ctx, &row).await;
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

/// Stores an ended call's record; then its recording's upload and its post-call work.
async fn close(ctx: &CallContext, record: &NewCall) {
    if let Err(e) = ctx.store.save_call(record).await {
        // The database is away: the record waits in the spool, the recording on disk.
        match ctx.spool.keep(record).await {
            Ok(()) => {
                tracing::warn!(call_id = %record.id, error = %e, "call record spooled until the database is back")
            }
            Err(io) => tracing::error!(call_id = %record.id, error = %e, spool = %io, "call record lost"),
        }
        return;
    }
    after_saved(ctx, record).await;
}

/// What follows a call's record being written: its recording's upload
/// (when the recordings go to S3) and its post-call work.
pub async fn after_saved(ctx: &CallContext, record: &NewCall) {
    if record.recording.is_some() {
        let recording = recording_path(&ctx.config, &record.id);
        ctx.recordings.upload_in_background(ctx.store.clone(), record.id.clone(), recording);
    }
    ctx.post_call.call_ended(record).await;
}

/// Records a finished call (its transcript, events and latencies) in the
/// store. A database failure is logged, and the call's recording stays.
pub async fn save_log(ctx: &CallContext, call: &CallInfo, log: &CallLog) {
    let pii = ctx.config.log.show_pii;
    tracing::info!(
        call_id = %call.id,
        channel = call.channel,
        caller = %crate::redact::number(call.caller.as_deref(), pii),
        callee = %crate::redact::number(call.callee.as_deref(), pii),
        end = ?log.end,
        turns = log.latencies.len(),
        "call ended"
    );
    let status = end_status(&log.end);
    let m = voxgate_pipeline::metrics::metrics();
    m.calls_ended
        .get_or_create(&voxgate_pipeline::metrics::OutcomeLabel { channel: call.channel, outcome: status })
        .inc();
    let ended_at = crate::store::now_ms();
    let duration_ms = i64::try_from(log.duration_ms).unwrap_or(i64::MAX);
    let recording = recording_path(&ctx.config, &call.id);
    let has_recording = usable_recording(&call.id, &recording, log).await;
    let record = NewCall {
        status: status.to_owned(),
        started_at: ended_at - duration_ms,
        ended_at,
        duration_ms,
        recording: has_recording
            .then(|| recording.file_name().map(|n| n.to_string_lossy().into_owned()))
            .flatten(),
        // A CallLog is plain data.
        detail: serde_json::to_string(log).unwrap_or_default(),
        ..new_call(ctx, call)
    };
    close(ctx, &record).await;
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

/// How a call ended, as the calls API reports it.
fn end_status(end: &EndReason) -> &'static str {
    match end {
        EndReason::CallerHungUp => "caller_hung_up",
        EndReason::NoMedia => "no_media",
        EndReason::MaxSilence => "max_silence",
        EndReason::MaxDuration => "max_duration",
        EndReason::AgentEnded => "agent_ended",
        EndReason::ProviderFailure => "provider_failure",
        EndReason::Transferred { .. } => "transferred",
        EndReason::Interrupted => INTERRUPTED,
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
