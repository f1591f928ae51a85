//! The media plane: every way a caller reaches an agent, and the calls that
//! run on [`voxgate_pipeline::call::CallCore`].
//!
//! Each transport is an IO edge: it owns its sockets, feeds the call core
//! what arrives and sends what the core hands back. Agents come from an
//! [`AgentDirectory`]; each call's start and end go to [`CallHooks`]; the
//! control plane implements both, and places calls through the [`sip::Dialer`].
//!
//! # Layout
//! - [`config`]: the sections it reads (`[sip]`, `[rtp]`, `[webrtc]`, ...), as [`MediaConfig`].
//! - [`agent`]: [`CallAgent`], what a call needs of its agent, and [`AgentDirectory`].
//! - [`hooks`]: [`CallHooks`], told of each call's start and end.
//! - [`calls`]: starting a call (admission, the call core, its recording) and ending it.
//! - [`admission`]: how many calls run at once, per server, tenant and agent.
//! - [`sip`]: phone calls in and out: the SIP sockets and per call RTP.
//! - [`webrtc`]: browser calls (str0m); [`stream`]: websocket media streams
//!   (Twilio's and our JSON protocol); [`chat`]: text chat; [`widget`]: the
//!   embeddable widget.
//! - [`media_access`]: the keys and tokens that open the public media endpoints.
//! - [`http`]: those endpoints' router; [`error`]: why a call could not
//!   start, and the endpoints' refusals.
//! - [`redact`]: phone numbers as logs show them; [`metrics`]: calls set
//!   up, ended and refused, by channel.
//!
//! # Example
//!
//! The settings every call reads, checked as start-up checks them:
//!
//! ```
//! use voxgate_media::MediaConfig;
//!
//! let mut config = MediaConfig::default();
//! assert!(config.check().is_ok());
//! config.rtp.port_min = config.rtp.port_max;
//! assert_eq!(config.check().unwrap_err().setting, "rtp.port_min");
//! // A call's recording is named by its id, made safe as a file name.
//! let path = voxgate_media::calls::recording_path(std::path::Path::new("rec"), "call_1/../x");
//! assert_eq!(path, std::path::Path::new("rec/call_1_.._x.wav"));
//! ```

pub mod admission;
pub mod agent;
pub mod calls;
pub mod chat;
pub mod config;
pub mod error;
pub mod hooks;
pub mod http;
pub mod media_access;
pub mod metrics;
pub mod redact;
pub mod sip;
pub mod stream;
pub mod webrtc;
pub mod widget;

pub use agent::{AgentDirectory, CallAgent, DirectoryError};
pub use config::MediaConfig;
pub use hooks::CallHooks;
