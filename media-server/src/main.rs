//! `voxgate`: the Voxgate media server.
//!
//! # Layout
//! - [`config`]: `config.toml` and `VOXGATE_SECTION__KEY` overrides.
//! - [`agent`]: the agent callers talk to, with its providers.
//! - [`sip`]: phone calls in and out: the SIP socket, per call RTP bridged to a session.
//! - [`http`]: the HTTP listener (`/healthz`, `/metrics`, `/v1/calls`; the control API grows here).
//!
//! `voxgate serve` runs the server; `voxgate config` prints the effective
//! configuration.

mod agent;
mod audio;
mod calls;
mod chat;
mod config;
mod http;
mod sip;
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
}

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
        Command::Serve { config } => {
            let config = load(config.as_ref())?;
            // Logs go to stderr, in colour only on a terminal.
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log.filter)?)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
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
    let agent = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || agent::load(&config)).await?.context("loading the agent")?
    };
    let p = &agent.providers;
    let info =
        http::AgentInfo { name: agent.name.clone(), stt: p.stt.name(), llm: p.llm.name(), tts: p.tts.name() };
    tracing::info!(agent = %info.name, stt = info.stt, llm = info.llm, tts = info.tts, "agent ready");
    let stop = tokio_util::sync::CancellationToken::new();
    let (sip_task, dialer) = if config.sip.enabled {
        let (addr, task, dialer) = sip::start(config.clone(), agent.clone(), stop.clone()).await?;
        tracing::info!(%addr, numbers = ?config.sip.numbers, "SIP listening (UDP)");
        (Some(task), Some(dialer))
    } else {
        (None, None)
    };
    crate::calls::prepare(&config).await?;
    let calls = std::sync::Arc::new(calls::CallContext { config: config.clone(), agent: agent.clone() });
    let state = http::AppState {
        vad: vad.name(),
        agent: info,
        dialer,
        api_key: config.http.api_key.clone(),
        calls,
        webrtc: webrtc::Calls::default(),
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown_signal()).await?;
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
