//! Which agent takes a call, and its definition as the call starts.
//!
//! Stored agents are read through a cache: an agent is built once (clients,
//! embedded knowledge) and reused for ten minutes, so a busy agent costs one
//! database read per ten minutes, not one per call. Updating or deleting an
//! agent through the API invalidates its entry at once; other nodes pick the
//! change up when their entry expires. Calls in progress keep the agent
//! they started with.
//!
//! Phone numbers route to agents by [`Agents::routes`]: the configured
//! `sip.numbers` reach the configured agent, and stored agents' numbers
//! reach them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::spec::AgentSpec;
use super::{Agent, LocalModels};
use crate::config::ControlConfig;
use crate::store::{Store, StoreError};
use voxgate_calls::DirectoryError;

/// How long a built agent is reused before it is read again.
pub const TTL: Duration = Duration::from_secs(600);

pub use voxgate_calls::agent::CONFIGURED;

/// An agent could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("no agent {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored agent {id} is unreadable: {source}")]
    Corrupt {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("building agent {id}: {source}")]
    Build {
        id: String,
        #[source]
        source: super::BuildError,
    },
}

/// The agents: the configured one, and stored ones through the cache.
#[derive(Debug)]
pub struct Agents {
    store: Store,
    config: ControlConfig,
    local: Arc<LocalModels>,
    configured: Agent,
    cache: Mutex<HashMap<String, (Instant, Agent)>>,
    /// Each tenant's plan, read as its calls start.
    plans: crate::plans::Plans,
    /// Bumped by every change through the API (the SIP routes reload).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Agents {
    /// The configured agent is built now (so its models load at start-up).
    ///
    /// # Errors
    /// Its models cannot be loaded.
    pub async fn new(config: &ControlConfig, store: Store) -> Result<Self, super::BuildError> {
        let local = Arc::new(LocalModels::new(&config.models));
        let configured = {
            let (config, local) = (config.clone(), local.clone());
            tokio::task::spawn_blocking(move || {
                super::build(&AgentSpec::from_config(&config), &config, &local)
            })
            .await
            .map_err(|e| super::BuildError::Panicked(e.to_string()))??
        };
        Ok(Self {
            store,
            config: config.clone(),
            local,
            configured,
            cache: Mutex::default(),
            plans: crate::plans::Plans::new(config.billing.plans.clone()),
            changes: tokio::sync::watch::channel(0).0,
        })
    }

    /// The agent from config.toml.
    #[must_use]
    pub fn configured(&self) -> &Agent {
        &self.configured
    }

    /// The agent `id` names: [`CONFIGURED`] (or the configured agent's
    /// name, which the media streams have always accepted), or a stored one.
    ///
    /// # Errors
    /// No such agent, or it cannot be built.
    pub async fn get(&self, id: &str) -> Result<Agent, AgentError> {
        if id == CONFIGURED || id == self.configured.name {
            return Ok(self.configured.clone());
        }
        if let Some(agent) = self.cached(id) {
            return Ok(agent);
        }
        let row = self.store.agent_by_id(id).await?.ok_or_else(|| AgentError::Unknown(id.to_owned()))?;
        let spec: AgentSpec = serde_json::from_str(&row.spec)
            .map_err(|source| AgentError::Corrupt { id: id.to_owned(), source })?;
        let (config, local) = (self.config.clone(), self.local.clone());
        let built = tokio::task::spawn_blocking(move || super::build(&spec, &config, &local))
            .await
            .map_err(|e| AgentError::Build {
                id: id.to_owned(),
                source: super::BuildError::Panicked(e.to_string()),
            })?
            .map_err(|source| AgentError::Build { id: id.to_owned(), source })?;
        let mut agent = built;
        agent.call.id = Some(row.id.clone().into());
        agent.call.tenant_id = Some(row.tenant_id.into());
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(row.id, (Instant::now(), agent.clone()));
        }
        Ok(agent)
    }

    /// The agent `id` names as a call gets it: with what its tenant's plan
    /// allows now (admission keeps to it).
    ///
    /// # Errors
    /// No such agent, it cannot be built, or the database fails.
    pub async fn for_call(&self, id: &str) -> Result<voxgate_calls::CallAgent, AgentError> {
        let mut call = self.get(id).await?.call;
        if let Some(tenant) = &call.tenant_id {
            call.plan = self.plans.gate(&self.store, tenant).await?;
        }
        Ok(call)
    }

    /// The plans tenants may be on (`[[billing.plans]]`), and where each stands.
    #[must_use]
    pub fn plans(&self) -> &crate::plans::Plans {
        &self.plans
    }

    fn cached(&self, id: &str) -> Option<Agent> {
        let mut cache = self.cache.lock().ok()?;
        match cache.get(id) {
            Some((at, agent)) if at.elapsed() < TTL => Some(agent.clone()),
            Some(_) => {
                cache.remove(id);
                None
            }
            None => None,
        }
    }

    /// Forgets agent `id` (it changed or went): the next call reads it anew.
    pub fn invalidate(&self, id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// Told of every change made through this node's API.
    #[must_use]
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Dialled number -> agent id ([`CONFIGURED`] for `sip.numbers`); a
    /// stored agent's number wins over the same configured one.
    ///
    /// # Errors
    /// The database fails.
    pub async fn routes(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut routes: HashMap<String, String> =
            self.config.numbers.iter().map(|n| (n.clone(), CONFIGURED.to_owned())).collect();
        routes.extend(self.store.numbers().await?);
        Ok(routes)
    }
}
/// The media plane finds its agents here.
#[async_trait::async_trait]
impl voxgate_calls::AgentDirectory for Agents {
    fn configured(&self) -> voxgate_calls::CallAgent {
        self.configured.call.clone()
    }

    /// The agent, with what its tenant's plan allows now.
    async fn get(&self, id: &str) -> Result<voxgate_calls::CallAgent, DirectoryError> {
        Agents::for_call(self, id).await.map_err(DirectoryError::from)
    }

    async fn routes(&self) -> Result<HashMap<String, String>, DirectoryError> {
        Agents::routes(self).await.map_err(|e| DirectoryError::Unavailable(e.to_string()))
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        Agents::changes(self)
    }

    async fn twilio_auth_token(&self, tenant: &str) -> Result<Option<String>, DirectoryError> {
        self.store.twilio_auth_token(tenant).await.map_err(|e| DirectoryError::Unavailable(e.to_string()))
    }
}

impl From<AgentError> for DirectoryError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown(id) => Self::Unknown(id),
            e => Self::Unavailable(e.to_string()),
        }
    }
}
