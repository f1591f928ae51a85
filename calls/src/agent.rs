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
