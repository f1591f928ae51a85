//! The server's websocket media protocols (Twilio Media Streams and plain
//! JSON), compiled here from the server's own source files: they are pure,
//! and need from the rest of the server only the two types below.
#![allow(dead_code)]

/// 20 ms at 16 kHz, as the pipeline's `session::Frame`.
pub type Frame = [i16; 320];

/// Who spoke, as the pipeline's `session::Speaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Caller,
    Agent,
}

#[path = "../../media-server/src/stream/protocol.rs"]
mod protocol;
pub use protocol::{FrameError, Incoming, Protocol};

#[path = "../../media-server/src/stream/json.rs"]
pub mod json;
#[path = "../../media-server/src/stream/twilio.rs"]
pub mod twilio;
