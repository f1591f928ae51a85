//! [`start`]: the stores, the agents, SIP, the workers and the HTTP
//! listener, wired together into a running [`Server`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use voxgate_control::store::{Store, StoreError};
use voxgate_control::{DEFAULT_TENANT, agent, api, auth, campaigns, ledger, post_call, recordings, spool};

use crate::config::{Config, ControlConfig};
use crate::http;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("loading the voice activity detector: {0}")]
    Vad(#[from] voxgate_pipeline::dsp::vad::VadError),
    #[error("preparing the recordings folder: {0}")]
    Recordings(#[source] std::io::Error),
    #[error("the database: {0}")]
    Store(#[from] StoreError),
    #[error("loading the agent: {0}")]
    Agent(#[from] agent::BuildError),
    #[error("sip.numbers: {number} is assigned to another tenant (voxgate numbers release {number})")]
    NumberTaken {
        number: String,
        #[source]
        source: StoreError,
    },
    #[error("[livekit]: {0}")]
    LiveKit(#[from] voxgate_control::livekit::LiveKitError),
    #[error("[whatsapp]: {0}")]
    WhatsApp(#[from] voxgate_control::whatsapp::graph::GraphError),
    #[error("post-call work: {0}")]
    PostCall(#[from] post_call::email::EmailError),
    #[error(transparent)]
    Sip(#[from] voxgate_media::sip::SipError),
    #[error("binding HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started server: stop it with [`Server::stop`].
pub struct Server {
    /// Where the HTTP listener took its port.
    pub http: SocketAddr,
    /// Where SIP listens (UDP, and TCP on the same port), when enabled.
    pub sip: Option<SocketAddr>,
    /// What the control plane's handlers share: the store, the agents, the ledger.
    pub state: api::AppState,
    /// What the media plane's calls are made of (the console starts its call here).
    pub calls: Arc<voxgate_media::calls::CallContext>,
    /// Ends the HTTP listener (gracefully), then everything else.
    http_stop: CancellationToken,
    stop: CancellationToken,
    http_task: tokio::task::JoinHandle<()>,
    sip_task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("http", &self.http).field("sip", &self.sip).finish_non_exhaustive()
    }
}

impl Server {
    /// Stops the listener (requests in flight are answered), then SIP and the workers.
    ///
    /// # Errors
    /// The HTTP task panicked.
    pub async fn stop(self) -> Result<(), tokio::task::JoinError> {
        self.http_stop.cancel();
        let served = self.http_task.await;
        self.stop.cancel();
        if let Some(task) = self.sip_task {
            let _ = task.await;
        }
        tracing::info!("stopped");
        served
    }
}

/// The two planes wired together, with no listener yet: what a call needs
/// (the [`CallContext`](voxgate_media::calls::CallContext): agents, hooks,
/// admission) and what the control API serves. `voxgate console` runs a
/// call on this alone; [`start`] adds SIP and the HTTP listener.
pub struct Planes {
    /// What the media plane's calls are made of.
    pub calls: Arc<voxgate_media::calls::CallContext>,
    /// The store, logins and the rest of the control API's state.
    pub control: Arc<api::Control>,
    /// The agents, built and cached.
    pub agents: Arc<agent::registry::Agents>,
    /// Calls' records, recordings and post-call work.
    pub ledger: Arc<ledger::Ledger>,
    /// The configured agent and its providers, for `/healthz`.
    pub info: api::AgentInfo,
    /// The VAD backend calls get.
    pub vad: &'static str,
    /// The LiveKit project, when `[livekit]` names one.
    pub livekit: Option<Arc<voxgate_control::livekit::LiveKit>>,
    /// Tenants' WhatsApp numbers and conversations.
    pub whatsapp: Arc<voxgate_control::whatsapp::WhatsApp>,
    /// Ends the workers (post-call, spool, campaigns, SIP).
    pub stop: CancellationToken,
}

impl std::fmt::Debug for Planes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planes").field("agent", &self.info.name).finish_non_exhaustive()
    }
}

/// Whether a process takes up what a crashed run left: the calls it was
/// running (their recordings on this disk) and the recordings it did not
/// upload. The server does. A console beside a running server must not:
/// that server's live calls, recording on the same disk, would look crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    TakeUp,
    Leave,
}

/// Loads the agents, opens the store and the call records' keeper (taking
/// up what a previous run left, with [`Recovery::TakeUp`]), and wires the
/// media plane's calls to them.
///
/// # Errors
/// A model, the database or a configured number is not usable.
pub async fn assemble(config: &Config, recovery: Recovery) -> Result<Planes, StartError> {
    let media_config = config.media();
    let control_config = config.control();
    // Probe the VAD now so a broken model setup shows at start-up, not on the first call.
    let vad = voxgate_pipeline::dsp::vad::build(&media_config.vad_config())?;
    tracing::info!(vad = vad.name(), models = %config.models.dir.display(), "media pipeline ready");
    voxgate_media::calls::prepare(&media_config).await.map_err(StartError::Recordings)?;
    let store = Store::open(&config.storage.database_url).await?;
    let agents = Arc::new(agent::registry::Agents::new(&control_config, store.clone()).await?);
    let agent = agents.configured();
    let p = &agent.providers;
    let info =
        api::AgentInfo { name: agent.name.clone(), stt: p.stt.name(), llm: p.llm.name(), tts: p.tts.name() };
    tracing::info!(agent = %info.name, stt = info.stt, llm = info.llm, tts = info.tts, "agent ready");
    let stop = CancellationToken::new();
    let default_tenant = store.tenant_named(DEFAULT_TENANT).await?;
    // The configured agent's numbers are the default tenant's, and nobody else's.
    for number in &config.sip.numbers {
        store
            .assign_number(number, &default_tenant)
            .await
            .map_err(|source| StartError::NumberTaken { number: number.clone(), source })?;
    }
    let control = Arc::new(api::Control {
        store: store.clone(),
        tokens: auth::Tokens::load(
            config.auth.jwt_secret.expose(),
            u64::from(config.auth.token_ttl_s),
            &store,
        )
        .await?,
        default_tenant: default_tenant.clone(),
        reports: Default::default(),
        tests: Default::default(),
        logins: Default::default(),
    });
    let ledger = open_ledger(&control_config, &store, &agents, &default_tenant, &stop, recovery).await?;
    let media_token_key = store.setting_or_init("media_token_key", || auth::random_hex(32)).await?;
    let livekit = voxgate_control::livekit::LiveKit::new(&config.livekit)?.map(Arc::new);
    if let Some(lk) = &livekit {
        tracing::info!(url = lk.url(), "LiveKit rooms served");
    }
    let calls = Arc::new(voxgate_media::calls::CallContext {
        admission: voxgate_media::admission::Admission::new(config.limits.clone()),
        config: media_config,
        agents: agents.clone(),
        hooks: ledger.clone(),
        default_tenant,
        tokens: voxgate_calls::tokens::MediaTokens::new(media_token_key.as_bytes()),
        rooms: livekit.clone().map(|lk| lk as Arc<dyn voxgate_calls::Rooms>),
    });
    let whatsapp = voxgate_control::whatsapp::WhatsApp::new(
        &config.whatsapp,
        store.clone(),
        agents.clone(),
        ledger.clone(),
        config.log.show_pii,
    )
    .map(Arc::new)?;
    Ok(Planes { calls, control, agents, ledger, info, vad: vad.name(), livekit, whatsapp, stop })
}

/// [`assemble`]s the planes, then starts SIP (and the campaigns that dial
/// through it) and the HTTP listener.
///
/// # Errors
/// A model, the database, a configured number or a listening address is not usable.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let Planes { calls, control, agents, ledger, info, vad, livekit, whatsapp, stop } =
        assemble(&config, Recovery::TakeUp).await?;
    whatsapp.spawn_sweeper(stop.clone());
    let (sip, sip_task, dialer) = if config.sip.enabled {
        let (addr, task, dialer) = voxgate_media::sip::start(calls.clone(), stop.clone()).await?;
        tracing::info!(%addr, numbers = ?config.sip.numbers, "SIP listening (UDP)");
        // Campaigns dial through the SIP trunk.
        let dialer: Arc<dyn voxgate_calls::Dialer> = Arc::new(dialer);
        let scheduler = campaigns::Scheduler::new(control.store.clone(), agents.clone(), dialer.clone());
        Arc::new(scheduler).spawn(stop.clone());
        (Some(addr), Some(task), Some(dialer))
    } else {
        (None, None, None)
    };
    let listen = config.http.listen;
    let http_error = |source| StartError::Http { addr: listen, source };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(http_error)?;
    let addr = listener.local_addr().map_err(http_error)?;
    tracing::info!(%addr, "HTTP listening");
    let media = voxgate_media::http::MediaState { calls: calls.clone(), webrtc: Default::default() };
    let state = api::AppState {
        addr,
        vad,
        agent: info,
        dialer,
        api_key: config.http.api_key.clone(),
        public_limit: voxgate_calls::limit::public_limit(calls.config.public_rate_limit),
        config: Arc::new(config.control()),
        media_tokens: calls.tokens.clone(),
        livekit,
        whatsapp,
        signups: Arc::new(voxgate_control::signup::Signups::new(
            control.store.clone(),
            config.billing.plans.clone(),
            config.signup.clone(),
            &config.stripe,
            post_call::email::Mailer::new(&config.smtp)?,
        )),
        agents,
        ledger,
        control,
    };
    let app = http::router(state.clone(), media);
    let limits = http::ConnectionLimits::from_config(&config.http);
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(http::serve(listener, app, limits, http_stop.clone()));
    Ok(Server { http: addr, sip, state, calls, http_stop, stop, http_task, sip_task })
}

/// The call records' keeper, with its recordings and post-call work
/// running; records a previous run spooled are written first, and with
/// [`Recovery::TakeUp`] the calls a crash interrupted and the recordings
/// not yet uploaded are taken up.
async fn open_ledger(
    config: &ControlConfig,
    store: &Store,
    agents: &Arc<agent::registry::Agents>,
    default_tenant: &str,
    stop: &CancellationToken,
    recovery: Recovery,
) -> Result<Arc<ledger::Ledger>, StartError> {
    let url_key = store.setting_or_init("recording_url_key", || auth::random_hex(32)).await?;
    let recordings = Arc::new(recordings::Recordings::new(
        config.storage.recordings_dir.clone(),
        url_key.as_bytes(),
        &config.s3,
    ));
    if recordings.uses_s3() && recovery == Recovery::TakeUp {
        // Recordings a previous run could not upload (S3 down, a restart mid-retry).
        for (call_id, file) in store.local_recordings().await? {
            let path = config.storage.recordings_dir.join(&file);
            if path.exists() {
                recordings.upload_in_background(store.clone(), call_id, path);
            }
        }
    }
    let post_call = Arc::new(post_call::PostCallWork::new(
        config,
        store.clone(),
        agents.clone(),
        default_tenant.to_owned(),
    )?);
    post_call.spawn_workers(stop);
    post_call.spawn_purge(stop);
    let ledger = Arc::new(ledger::Ledger {
        store: store.clone(),
        default_tenant: default_tenant.to_owned(),
        recordings,
        post_call,
        spool: spool::Spool::new(&config.storage.recordings_dir),
        recordings_dir: config.storage.recordings_dir.clone(),
        max_call_duration_s: config.agent.max_call_duration_s,
    });
    // Records a previous run kept while the database was away, then calls it was running.
    ledger.flush_spool().await;
    ledger.clone().spawn_spool_flusher(stop.clone());
    if recovery == Recovery::TakeUp {
        ledger.recover_interrupted().await;
    }
    Ok(ledger)
}
