//! The media plane: every way a caller reaches an agent, and the calls that
//! run on [`voxgate_pipeline::call::CallCore`].
//!
//! Each transport is an IO edge: it owns its sockets, feeds the call core
//! what arrives and sends what the core hands back. Agents come from an
//! [`AgentDirectory`](voxgate_calls::AgentDirectory); each call's start and
//! end go to [`CallHooks`](voxgate_calls::CallHooks); and the SIP edge is the
//! [`Dialer`](voxgate_calls::Dialer) for calls out ([`sip::SipDialer`]). Those
//! traits live in `voxgate-calls`, which the control plane implements and
//! uses: the two planes never import each other.
//!
//! # Layout
//! - [`config`]: the sections it reads (`[sip]`, `[rtp]`, `[webrtc]`, ...), as [`MediaConfig`].
//! - [`calls`]: starting a call (admission, the call core, its recording) and ending it.
//! - [`admission`]: how many calls run at once, per server, tenant and agent.
//! - [`sip`]: phone calls in and out: the SIP sockets and per call RTP.
//! - [`webrtc`]: browser calls (str0m); [`stream`]: websocket media streams
//!   (Twilio's and our JSON protocol); [`chat`]: text chat; [`widget`]: the
//!   embeddable widget; `console` (feature `console`): this machine's
//!   microphone and speakers.
//! - [`media_access`]: what a client of the public media endpoints proved
//!   (the media key, a media token, Twilio's signature).
//! - [`http`]: those endpoints' router; [`error`]: why a call could not
//!   start, and the endpoints' refusals.
//! - [`metrics`]: calls set up, ended and refused, by channel.
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
//! ```

pub mod admission;
pub mod calls;
pub mod chat;
pub mod config;
#[cfg(feature = "console")]
pub mod console;
pub mod error;
pub mod http;
pub mod media_access;
pub mod metrics;
pub mod sip;
pub mod stream;
pub mod webrtc;
pub mod widget;

pub use config::MediaConfig;
