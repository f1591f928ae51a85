//! What Voxgate's two planes agree on, and all they share besides the
//! domain types: neither the media plane (`voxgate-media`) nor the control
//! plane (`voxgate-control`) imports the other.
//!
//! The media plane runs calls: it finds their agents through an
//! [`AgentDirectory`], tells [`CallHooks`] of each call's start and end,
//! and is a [`Dialer`] for calls out. The control plane implements the
//! first two (agents, call records, recordings, post-call work) and uses
//! the third (the calls API, campaigns). The binary wires them together.
//!
//! # Layout
//! - [`agent`]: [`CallAgent`], what a call needs of its agent, and the
//!   [`AgentDirectory`] that lends them.
//! - [`hooks`]: [`CallHooks`], and where a call's recording is.
//! - [`dial`]: the [`Dialer`] and an outbound call's [`dial::OutboundStatus`].
//! - [`rooms`]: calls LiveKit places into Voxgate for its rooms ([`Rooms`]).
//! - [`tokens`]: the media tokens one plane mints and the other checks.
//! - [`settings`]: the settings both read (`[widget]`, `[vad]`, `[limits]`).
//! - [`limit`]: the public endpoints' rate limit; [`redact`]: phone numbers
//!   as logs show them.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use voxgate_calls::tokens::MediaTokens;
//!
//! // The control plane mints a token for agent agt_1; the media plane checks it.
//! let tokens = MediaTokens::new(b"a secret every node shares");
//! let (token, _expires) = tokens.mint_for("agt_1", Duration::from_secs(60));
//! let now = voxgate_calls::tokens::now_s();
//! assert_eq!(tokens.check(&token, now).as_deref(), Some("agt_1"));
//! assert_eq!(tokens.check("agt_2.1.00", now), None);
//! // A recording is named by its call's id, made safe as a file name.
//! let path = voxgate_calls::hooks::recording_path(std::path::Path::new("rec"), "call_1/../x");
//! assert_eq!(path, std::path::Path::new("rec/call_1_.._x.wav"));
//! ```

pub mod agent;
pub mod dial;
pub mod hooks;
pub mod limit;
pub mod redact;
pub mod rooms;
pub mod settings;
pub mod tokens;

pub use agent::{AgentDirectory, CallAgent, DirectoryError, PlanClosed, PlanGate};
pub use dial::Dialer;
pub use hooks::CallHooks;
pub use rooms::Rooms;
