//! The few types every part of Voxgate shares, so the media plane and the
//! control plane can speak of the same things without depending on each
//! other.
//!
//! # Layout
//! - [`Speaker`]: who said a line of a call's transcript.
//! - [`CallId`], [`TenantId`], [`AgentId`]: whose is what.
//! - [`Channel`], [`Direction`], [`CallStatus`]: how a call came and how it ended.
//! - [`CallInfo`]: who carried a call, and between whom.
//! - [`Secret`]: a configured secret that no log or printout shows.
//!
//! ```
//! use voxgate_domain::{Channel, Speaker};
//! assert_eq!(serde_json::to_string(&Speaker::Caller)?, r#""caller""#);
//! assert_eq!("webrtc".parse::<Channel>(), Ok(Channel::WebRtc));
//! # Ok::<(), serde_json::Error>(())
//! ```

mod ids;
mod secret;

use serde::{Deserialize, Serialize};

pub use ids::{AgentId, CallId, TenantId, random_id};
pub use secret::Secret;

/// Who spoke a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The person calling.
    Caller,
    /// The AI agent.
    Agent,
    /// A person of the business's team who took the conversation over (the human desk).
    Staff,
}

impl Speaker {
    /// As transcripts and the API say it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Agent => "agent",
            Self::Staff => "staff",
        }
    }
}

/// What carried a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A phone call over SIP and RTP.
    Sip,
    /// A browser over WebRTC (the widget).
    #[serde(rename = "webrtc")]
    WebRtc,
    /// A telephony provider's websocket stream (Twilio Media Streams).
    Twilio,
    /// Our own JSON websocket stream.
    Websocket,
    /// Text chat.
    Chat,
    /// This machine's microphone and speakers (`voxgate console`).
    Console,
    /// A WhatsApp conversation (Meta's WhatsApp Cloud API).
    #[serde(rename = "whatsapp")]
    WhatsApp,
}

impl Channel {
    /// Every channel, in the order the API lists them.
    pub const ALL: [Self; 7] =
        [Self::Sip, Self::WebRtc, Self::Twilio, Self::Websocket, Self::Chat, Self::Console, Self::WhatsApp];

    /// As records, metrics and the API say it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::WebRtc => "webrtc",
            Self::Twilio => "twilio",
            Self::Websocket => "websocket",
            Self::Chat => "chat",
            Self::Console => "console",
            Self::WhatsApp => "whatsapp",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the [`Channel`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown name {:?}", self.0)
    }
}

impl std::error::Error for UnknownName {}

impl std::str::FromStr for Channel {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// As the API and webhooks say it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Where a call's record stands: running, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The call is running.
    InProgress,
    /// Its node died while it ran (found at the node's next start).
    Interrupted,
    CallerHungUp,
    /// No caller audio came for too long.
    NoMedia,
    /// The caller said nothing for too long.
    MaxSilence,
    /// It reached the longest call allowed.
    MaxDuration,
    /// The agent hung up.
    AgentEnded,
    /// A provider (STT, LLM, TTS) failed for good.
    ProviderFailure,
    /// Handed to a person.
    Transferred,
    /// A call we placed reached an answering machine, and hung up on it.
    AnsweringMachine,
    /// A call we placed reached an answering machine, and left a message.
    MessageLeft,
}

impl CallStatus {
    /// As records and the API say it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Interrupted => "interrupted",
            Self::CallerHungUp => "caller_hung_up",
            Self::NoMedia => "no_media",
            Self::MaxSilence => "max_silence",
            Self::MaxDuration => "max_duration",
            Self::AgentEnded => "agent_ended",
            Self::ProviderFailure => "provider_failure",
            Self::Transferred => "transferred",
            Self::AnsweringMachine => "answering_machine",
            Self::MessageLeft => "message_left",
        }
    }
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who carried a call, and between whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub id: CallId,
    pub channel: Channel,
    pub direction: Direction,
    /// The calling number or user, when known.
    pub caller: Option<String>,
    /// The called number or user, when known.
    pub callee: Option<String>,
    /// The tenant it belongs to; `None`: the configured agent's (the default tenant).
    pub tenant_id: Option<TenantId>,
    /// The stored agent that took it; `None`: the configured agent.
    pub agent_id: Option<AgentId>,
    /// The campaign that placed it.
    pub campaign_id: Option<String>,
    /// The carrier's id of the call: the SIP Call-ID, Twilio's `callSid`.
    /// Anyone can choose or reuse one, so it is only an attribute.
    pub external_id: Option<String>,
    /// The LiveKit room a dispatched call serves.
    pub room: Option<String>,
}

impl CallInfo {
    /// An inbound call `id` on `channel`, with nothing else known yet.
    #[must_use]
    pub fn inbound(id: CallId, channel: Channel) -> Self {
        Self {
            id,
            channel,
            direction: Direction::Inbound,
            caller: None,
            callee: None,
            tenant_id: None,
            agent_id: None,
            campaign_id: None,
            external_id: None,
            room: None,
        }
    }
}

/// The time now, in milliseconds since the Unix epoch, as records keep it.
#[must_use]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_read_back_what_they_write() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        assert_eq!("pstn".parse::<Channel>(), Err(UnknownName("pstn".into())));
    }

    #[test]
    fn statuses_serialise_as_records_say_them() {
        for s in [CallStatus::InProgress, CallStatus::CallerHungUp, CallStatus::Transferred] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }
}
