//! What the media plane needs of an agent, and where it finds them. The
//! control plane builds agents (their providers, models, knowledge) and
//! lends them through [`AgentDirectory`]; a call holds its [`CallAgent`].

use std::collections::HashMap;

use voxgate_domain::{AgentId, TenantId};
use voxgate_pipeline::session::{Providers, SessionConfig};

use crate::settings::WidgetConfig;

/// An agent ready to take calls.
#[derive(Clone)]
pub struct CallAgent {
    /// The stored agent's id; `None` for the configured one.
    pub id: Option<AgentId>,
    /// Its tenant; `None` for the configured agent (the default tenant).
    pub tenant_id: Option<TenantId>,
    pub name: String,
    pub session: SessionConfig,
    pub providers: Providers,
    /// How its widget looks, and where it may be embedded.
    pub widget: WidgetConfig,
    /// Calls it takes at once (0: only its tenant's and the server's limits).
    pub max_calls: u32,
    /// Anonymous visitors may reach it (the media plane's `media_access`).
    pub public: bool,
    /// What its tenant's plan allows now, as the directory lent it.
    pub plan: PlanGate,
    /// Its phone calls' media protection; `None`: the server's (`rtp.srtp`).
    pub srtp: Option<SrtpMode>,
    /// On the calls it places: who answered, and what to do about a
    /// machine (the session's `answering_machine` on those calls only).
    pub answering_machine: Option<voxgate_pipeline::session::AnsweringMachine>,
}

/// Whether a phone call's media is SRTP (keys by SDES, only ever sent over
/// SIP over TLS): `rtp.srtp` for the server, and per trunk and per agent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP; SRTP offers are refused.
    #[default]
    Off,
    /// SRTP when the peer offers it over TLS, plain RTP otherwise.
    Offer,
    /// SRTP only: a call over plain SIP, or offering plain RTP, is refused (488).
    Require,
}

impl From<SrtpMode> for voxgate_sip_bridge::sdp::Srtp {
    fn from(m: SrtpMode) -> Self {
        match m {
            SrtpMode::Off => Self::Off,
            SrtpMode::Offer => Self::Offer,
            SrtpMode::Require => Self::Require,
        }
    }
}

/// What a tenant's plan allows as a call starts: the directory fills it in
/// each time it lends an agent, and admission keeps to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanGate {
    /// The plan's calls at once (0: only the operator's limits).
    pub max_calls: u32,
    /// Why the plan takes no calls now; `None`: it takes them.
    pub closed: Option<PlanClosed>,
}

/// Why a tenant's plan takes no calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanClosed {
    /// Suspended: a payment failed, or the subscription ended.
    Suspended,
    /// Its free trial is over.
    TrialEnded,
    /// This month's minutes are used up.
    MinutesUsed,
}

impl PlanClosed {
    /// As `/metrics` and the API say it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Suspended => "suspended",
            Self::TrialEnded => "trial_ended",
            Self::MinutesUsed => "minutes_used",
        }
    }
}

impl PlanClosed {
    /// What a refused caller or client is told.
    #[must_use]
    pub const fn text(self) -> &'static str {
        match self {
            Self::Suspended => "the tenant's plan is suspended",
            Self::TrialEnded => "the tenant's free trial has ended",
            Self::MinutesUsed => "the tenant's plan has no minutes left this month",
        }
    }
}

impl std::fmt::Display for PlanClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::fmt::Debug for CallAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallAgent")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// What [`AgentDirectory::routes`] maps the configured numbers to.
pub const CONFIGURED: &str = "";

/// An agent could not be had (exhaustive: the media plane answers each
/// kind in its own way).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// There is no such agent (404).
    #[error("no agent {0:?}")]
    Unknown(String),
    /// It exists but cannot be had now: its record or its models (503).
    #[error("{0}")]
    Unavailable(String),
}

/// Where calls find their agents.
#[async_trait::async_trait]
pub trait AgentDirectory: Send + Sync + std::fmt::Debug {
    /// The agent from config.toml.
    fn configured(&self) -> CallAgent;

    /// The agent `id` names: [`CONFIGURED`] (or the configured agent's
    /// name), or a stored one.
    ///
    /// # Errors
    /// No such agent, or it cannot be had now.
    async fn get(&self, id: &str) -> Result<CallAgent, DirectoryError>;

    /// Dialled number -> agent id ([`CONFIGURED`] for the configured numbers).
    ///
    /// # Errors
    /// The numbers cannot be read now.
    async fn routes(&self) -> Result<HashMap<String, String>, DirectoryError>;

    /// Told of every change to agents or numbers (the SIP routes reload).
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The Twilio auth token of `tenant`, with which Twilio signs the
    /// streams it opens to that tenant's agents; `None`: it has none.
    ///
    /// # Errors
    /// It cannot be read now.
    async fn twilio_auth_token(&self, tenant: &str) -> Result<Option<String>, DirectoryError>;
}
