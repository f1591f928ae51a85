//! What a websocket media protocol is to the server: the messages it
//! understands ([`Incoming`]), what makes one unusable ([`FrameError`]),
//! and the [`Protocol`] trait that [`super::twilio`] and [`super::json`]
//! implement.

use voxgate_codecs::Codec;
use voxgate_codecs::dtmf::DtmfKey;

use super::Speaker;

/// One message from a streaming client, understood.
#[derive(Debug)]
pub enum Incoming {
    /// The stream starts; the agent it asks for, the client's own id, and
    /// who is calling (as the client says: an attribute of the call, never its key).
    Start {
        agent: Option<String>,
        external_id: Option<String>,
        caller: Option<String>,
        /// A media token carried in the start message (Twilio's custom parameters).
        token: Option<String>,
    },
    /// The caller's audio, in the protocol's [`Protocol::codec`], as it came.
    Audio(Vec<u8>),
    Dtmf(DtmfKey),
    /// A mark we sent: the audio before it has played.
    Mark(String),
    Stop,
    /// Understood; nothing to do.
    Nothing,
}

/// A message that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not a message of this protocol: {0}")]
    Json(String),
    #[error("audio is not base64")]
    Base64,
    #[error("{0} bytes of audio in one message")]
    Size(usize),
    #[error("audio before start")]
    NotStarted,
    #[error("unsupported audio format {0}")]
    Format(String),
    #[error("{0:?} is not a keypad key")]
    Dtmf(String),
}

/// Who the client says is calling, if it is something a call log can keep:
/// at most 64 printable characters, no spaces.
#[must_use]
pub fn caller_attribute(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
}

/// A stream protocol: reads the client's messages, writes ours.
pub trait Protocol: Send + 'static {
    /// The audio format both ways.
    fn codec(&self) -> Codec;
    fn parse(&mut self, text: &str) -> Result<Incoming, FrameError>;
    /// Said once the session runs as call `id` (the JSON protocol tells the client).
    fn started(&mut self, _id: &str) -> Option<String> {
        None
    }
    /// One 20 ms frame of the agent's voice, encoded in [`Protocol::codec`].
    fn audio(&mut self, payload: &[u8]) -> Option<String>;
    /// Drop what you buffered of the agent's voice (barge-in).
    fn clear(&mut self) -> String;
    /// Tell me when what you have so far has played.
    fn mark(&mut self, name: &str) -> String;
    /// The live transcript, for clients that show it.
    fn transcript(&mut self, _speaker: Speaker, _text: &str, _is_final: bool) -> Option<String> {
        None
    }
}
