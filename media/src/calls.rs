//! What starting and ending a call takes, whatever carries it (SIP, a
//! websocket stream, WebRTC, chat): admission, the call core with its
//! recording, and the reports to [`CallHooks`].

use std::sync::Arc;

use voxgate_calls::hooks::{recording_path, status};
use voxgate_domain::{CallId, CallInfo, Channel};
use voxgate_pipeline::session::CallLog;

use crate::config::MediaConfig;
use crate::error::{NoFreePort, StartError};
use voxgate_calls::CallHooks;
use voxgate_calls::agent::{AgentDirectory, CallAgent};

/// What starting a call needs, whatever carries it.
#[derive(Debug)]
pub struct CallContext {
    pub config: MediaConfig,
    /// The agents, and which number reaches which.
    pub agents: Arc<dyn AgentDirectory>,
    /// Told of each call's start and end.
    pub hooks: Arc<dyn CallHooks>,
    /// The configured agent's tenant.
    pub default_tenant: String,
    /// How many calls run at once.
    pub admission: Arc<crate::admission::Admission>,
    /// Signs and checks the tokens that open one agent's media endpoints.
    pub tokens: voxgate_calls::tokens::MediaTokens,
    /// The calls LiveKit places for its rooms; `None`: LiveKit is not configured.
    pub rooms: Option<Arc<dyn voxgate_calls::Rooms>>,
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
        crate::media_access::Access::of(self.config.media_key.expose(), &self.tokens, key, token)
    }

    /// Whether `access` reaches `agent` (of its tenant).
    #[must_use]
    pub fn may_use(&self, access: &crate::media_access::Access, agent: &CallAgent) -> bool {
        access.may_use(agent, self.tenant_of(agent))
    }

    /// The tenant `agent` belongs to.
    #[must_use]
    pub fn tenant_of<'a>(&'a self, agent: &'a CallAgent) -> &'a str {
        agent.tenant_id.as_deref().unwrap_or(&self.default_tenant)
    }

    /// A place for a call on `channel` to `agent`, within the limits.
    ///
    /// # Errors
    /// The server, the agent's tenant or the agent is at its limit.
    pub fn admit(
        &self,
        channel: Channel,
        agent: &CallAgent,
    ) -> Result<crate::admission::Seat, crate::admission::Full> {
        let tenant = self.tenant_of(agent);
        let own = agent.id.as_deref().map(|id| (id, agent.max_calls));
        self.admission.admit(channel, tenant, own, agent.plan)
    }

    /// Starts the call core of call `id` to `agent`: its session, with a
    /// voice activity detector of its own and the recording in the
    /// recordings folder, on the audio `carrier` brings.
    ///
    /// # Errors
    /// The detector or the codec cannot be set up.
    pub fn start_core(
        &self,
        id: &str,
        agent: &CallAgent,
        carrier: Carrier,
    ) -> Result<voxgate_pipeline::call::CallCore, StartError> {
        use voxgate_pipeline::call::{CallCore, CallParts};
        let session = voxgate_pipeline::session::SessionParts {
            config: agent.session.clone(),
            providers: agent.providers.clone(),
            vad: voxgate_pipeline::dsp::vad::build(&self.config.vad_config())?,
            recording: Some(recording_path(&self.config.recordings_dir, id)),
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

    /// A call was answered: the hooks record it.
    pub async fn started(&self, call: &CallInfo) {
        self.hooks.started(call).await;
    }

    /// A call ended: it is counted and logged, and the hooks record it.
    pub async fn ended(&self, call: &CallInfo, log: &CallLog) {
        let pii = self.config.show_pii;
        tracing::info!(
            call_id = %call.id,
            channel = call.channel.as_str(),
            caller = %voxgate_calls::redact::number(call.caller.as_deref(), pii),
            callee = %voxgate_calls::redact::number(call.callee.as_deref(), pii),
            end = ?log.end,
            turns = log.latencies.len(),
            "call ended"
        );
        let m = crate::metrics::metrics();
        m.calls_ended
            .get_or_create(&crate::metrics::OutcomeLabel {
                channel: call.channel.as_str(),
                outcome: status(&log.end).as_str(),
            })
            .inc();
        self.hooks.ended(call, log).await;
    }

    /// An inbound call `id` on `channel` to `agent` (its tenant's).
    #[must_use]
    pub fn inbound(id: CallId, channel: Channel, agent: &CallAgent) -> CallInfo {
        CallInfo {
            tenant_id: agent.tenant_id.clone(),
            agent_id: agent.id.clone(),
            ..CallInfo::inbound(id, channel)
        }
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

/// Makes the recordings folder.
///
/// # Errors
/// It cannot be made.
pub async fn prepare(config: &MediaConfig) -> std::io::Result<()> {
    let dir = &config.recordings_dir;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("making {}: {e}", dir.display())))
}

/// Binds a media (RTP) socket on a free even port of the configured range.
///
/// # Errors
/// None of the ports tried is free.
pub async fn bind_media_port(
    config: &MediaConfig,
    ip: std::net::IpAddr,
) -> Result<tokio::net::UdpSocket, NoFreePort> {
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
    Err(NoFreePort { min, max })
}
