//! The websocket media protocols telephony providers and simple clients
//! speak: what their messages mean ([`Incoming`]) and what we write back.
//! Pure (no I/O, no clock), so the server's stream edge and the fuzz
//! targets use the same code.
//!
//! # Layout
//! - [`protocol`]: the [`Protocol`] trait, [`Incoming`] and [`FrameError`].
//! - [`twilio`]: Twilio Media Streams (also Telnyx, Plivo, Vobiz): µ-law 8 kHz.
//! - [`json`]: a plain JSON protocol: 16-bit PCM at 16 kHz.
//!
//! ```
//! use voxgate_streams::{Incoming, Protocol, json::Json};
//!
//! let mut stream = Json::default();
//! assert!(matches!(stream.parse(r#"{"type": "start", "agent": "bakery"}"#), Ok(Incoming::Start { .. })));
//! let audio = r#"{"type": "media", "data": "AAABAA==", "format": "pcm_16k"}"#;
//! assert!(matches!(stream.parse(audio), Ok(Incoming::Audio(bytes)) if bytes == [0, 0, 1, 0]));
//! ```

pub mod json;
pub mod protocol;
pub mod twilio;

pub use protocol::{FrameError, Incoming, Protocol};
pub use voxgate_domain::Speaker;
