//! `voxgate`: the Voxgate media server.
//!
//! # Layout
//! - [`config`]: `config.toml` and `VOXGATE_SECTION__KEY` overrides.
//! - [`agent`]: the agent callers talk to, with its providers.
//! - [`sip`]: phone calls in and out: the SIP socket, per call RTP bridged to a session.
//! - [`http`]: the HTTP listener: health, metrics, media endpoints, and
//!   [`api`], the control API (`/v1`, OpenAPI at `/v1/openapi.json`).
//! - [`auth`]: logins (argon2, JWT) and API keys; [`store`]: records in
//!   SQLite or PostgreSQL; [`recordings`]: recordings and signed links.
//! - [`calls`]: what every call leaves behind, whatever carried it.
//!
//! `voxgate serve` runs the server; `voxgate config` prints the effective
//! configuration; `voxgate admin create` makes an operator.

mod agent;
mod api;
mod audio;
mod auth;
mod calls;
mod campaigns;
mod chat;
mod config;
mod dashboard;
mod http;
mod post_call;
mod recordings;
mod redact;
mod sip;
mod store;
mod stream;
mod webrtc;
mod widget;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// An open-source media server for AI voice agents.
#[derive(Debug, Parser)]
#[command(name = "voxgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Configuration file; without it, built-in defaults (the same as the shipped config.toml).
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (file plus environment) as TOML.
    Config {
        /// Configuration file.
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage operators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make an operator who can log in to the control API (the first admin).
    Create {
        /// Configuration file (for `storage.database_url`).
        #[arg(long, short, env = "VOXGATE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        email: String,
        /// The password (at least 10 characters); prefer the environment
        /// variable to the command line, which other users can see.
        #[arg(long, env = "VOXGATE_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// The organisation; made if it does not exist. Default: the default
        /// tenant, which owns the configured agent's calls.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

/// The tenant of the configured agent (and of `http.api_key`).
const DEFAULT_TENANT: &str = "default";

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.map(PathBuf::as_path), std::env::vars()).context("loading configuration")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Config { config } => {
            let config = load(config.as_ref())?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { config, email, password, tenant } } => {
            let config = load(config.as_ref())?;
            anyhow::ensure!(password.chars().count() >= 10, "the password must have at least 10 characters");
            anyhow::ensure!(
                email.contains('@') && email.len() <= 320 && !email.contains(char::is_whitespace),
                "{email:?} is not an email address"
            );
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let store =
                    store::Store::open(&config.storage.database_url).await.context("opening the database")?;
                let tenant_id = store.tenant_named(&tenant).await?;
                let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
                let user = store.create_user(&tenant_id, &email, &hash, "admin").await?;
                println!("created admin {user} ({email}) in tenant {tenant_id} ({tenant})");
                anyhow::Ok(())
            })
        }
        Command::Serve { config } => {
            let config = load(config.as_ref())?;
            // Logs go to stderr, in colour only on a terminal.
            let logs = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log.filter)?)
                .with_writer(std::io::stderr);
            match config.log.format {
                config::LogFormat::Text => {
                    logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
                }
                config::LogFormat::Json => logs.json().with_current_span(false).init(),
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Probe the VAD now so a broken model setup shows at start-up, not on the first call.
    let vad = voxgate_pipeline::dsp::vad::build(&config.vad_config())
        .context("loading the voice activity detector")?;
    tracing::info!(vad = vad.name(), models = %config.models.dir.display(), "media pipeline ready");
    crate::calls::prepare(&config).await?;
    let store = store::Store::open(&config.storage.database_url).await.context("opening the database")?;
    let agents = std::sync::Arc::new(
        agent::registry::Agents::new(&config, store.clone()).await.context("loading the agent")?,
    );
    let agent = agents.configured();
    let p = &agent.providers;
    let info =
        http::AgentInfo { name: agent.name.clone(), stt: p.stt.name(), llm: p.llm.name(), tts: p.tts.name() };
    tracing::info!(agent = %info.name, stt = info.stt, llm = info.llm, tts = info.tts, "agent ready");
    let stop = tokio_util::sync::CancellationToken::new();
    let default_tenant = store.tenant_named(DEFAULT_TENANT).await?;
    let tokens =
        auth::Tokens::load(config.auth.jwt_secret.expose(), u64::from(config.auth.token_ttl_s), &store)
            .await?;
    let url_key = store.setting_or_init("recording_url_key", || auth::random_hex(32)).await?;
    let control = std::sync::Arc::new(api::Control {
        store: store.clone(),
        tokens,
        default_tenant: default_tenant.clone(),
        reports: Default::default(),
    });
    let recordings = std::sync::Arc::new(recordings::Recordings::new(
        config.storage.recordings_dir.clone(),
        url_key.as_bytes(),
        &config.s3,
    ));
    if recordings.uses_s3() {
        // Recordings a previous run could not upload (S3 down, a restart mid-retry).
        for (call_id, file) in store.local_recordings().await? {
            let path = config.storage.recordings_dir.join(&file);
            if path.exists() {
                recordings.upload_in_background(store.clone(), call_id, path);
            }
        }
    }
    let post_call = std::sync::Arc::new(post_call::PostCallWork::new(
        &config,
        store.clone(),
        agents.clone(),
        default_tenant.clone(),
    )?);
    post_call.spawn_workers(&stop);
    let calls = std::sync::Arc::new(calls::CallContext {
        config: config.clone(),
        agents: agents.clone(),
        recordings,
        store,
        default_tenant,
        post_call,
    });
    calls::recover_interrupted(&calls).await;
    let (sip_task, dialer) = if config.sip.enabled {
        let (addr, task, dialer) = sip::start(calls.clone(), stop.clone()).await?;
        tracing::info!(%addr, numbers = ?config.sip.numbers, "SIP listening (UDP)");
        // Campaigns dial through the SIP trunk.
        let scheduler = campaigns::Scheduler::new(calls.store.clone(), agents.clone(), dialer.clone());
        std::sync::Arc::new(scheduler).spawn(stop.clone());
        (Some(task), Some(dialer))
    } else {
        (None, None)
    };
    let state = http::AppState {
        vad: vad.name(),
        agent: info,
        dialer,
        api_key: config.http.api_key.clone(),
        calls,
        webrtc: webrtc::Calls::default(),
        control,
        public_limit: http::public_limit(config.http.public_rate_limit),
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    let app = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    stop.cancel();
    if let Some(task) = sip_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
