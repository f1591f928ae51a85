//! The Voxgate server, composed: the library behind the `voxgate` binary,
//! so tests (and embedders) can run the whole server in their own process.
//!
//! Two libraries make the server: the media plane ([`voxgate_media`]: SIP,
//! WebRTC, websocket streams, chat, the widget, each an IO edge around the
//! call core) and the control plane ([`voxgate_control`]: the control API,
//! agents, call records, recordings, post-call work, campaigns). The media
//! plane finds agents through the control plane's `AgentDirectory` and
//! reports calls to its `CallHooks`; the control plane places calls through
//! the media plane's `Dialer`. This crate composes them.
//!
//! # Layout
//! - [`config`]: `config.toml` and `VOXGATE_SECTION__KEY` overrides, read
//!   into each plane's own sections ([`voxgate_media::MediaConfig`],
//!   [`voxgate_control::ControlConfig`]).
//! - [`server`]: [`assemble`] wires the stores, the agents, the workers and
//!   the media plane's calls into [`Planes`] (what `voxgate console` runs a
//!   call on); [`start`] adds SIP and the HTTP listener: a running
//!   [`Server`], which says where it listens and stops on [`Server::stop`].
//! - [`http`]: the HTTP listener: health, readiness, metrics, and both
//!   planes' routers merged.
//! - `main.rs` (the binary): the command line.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = voxgate_media_server::config::Config::load(None, [
//!     ("VOXGATE_HTTP__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
//! ])?;
//! let server = voxgate_media_server::start(config).await?;
//! println!("control API on http://{}", server.http);
//! server.stop().await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod http;
pub mod server;

pub use server::{Planes, Recovery, Server, StartError, assemble, start};
