//! Placing calls: the control plane (the calls API, campaigns) asks a
//! [`Dialer`]; the media plane's SIP edge is one.

use std::time::Duration;

use serde::Serialize;

use crate::agent::CallAgent;

/// Places outbound calls and reports how they go.
#[async_trait::async_trait]
pub trait Dialer: Send + Sync + std::fmt::Debug {
    /// Places a call for `tenant_id`, answered by `agent`, to `to` (a `sip:`
    /// URI, or a number for the trunk's domain) and returns at once; the
    /// call's progress is in [`Dialer::status`]. Nobody answering within
    /// `ring_timeout` (else the trunk's) is a no-answer.
    ///
    /// # Errors
    /// `to` cannot be dialled or is not allowed, the tenant is at its
    /// limits, the next hop does not resolve, or no media port is free.
    async fn dial(
        &self,
        tenant_id: &str,
        agent: CallAgent,
        to: &str,
        ring_timeout: Option<Duration>,
        campaign_id: Option<String>,
    ) -> Result<OutboundStatus, DialError>;

    /// An outbound call's status, while it is kept.
    fn status(&self, id: &str) -> Option<OutboundStatus>;
}

/// Where an outbound call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DialStatus {
    Dialing,
    Ringing,
    /// Answered and talking to the agent.
    Answered,
    /// Answered, then hung up.
    Completed,
    /// Answered, then handed to a human (`transferred_to`).
    Transferred,
    Busy,
    NoAnswer,
    Failed,
}

impl DialStatus {
    /// As the API says it (the same as its JSON).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dialing => "dialing",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
            Self::Transferred => "transferred",
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
            Self::Failed => "failed",
        }
    }

    /// True once the call has its outcome.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Transferred | Self::Busy | Self::NoAnswer | Self::Failed)
    }
}

/// What the API reports about an outbound call.
#[derive(Debug, Clone, Serialize)]
pub struct OutboundStatus {
    /// The SIP Call-ID; also names the call's recording and log.
    pub id: String,
    /// The Request-URI dialled.
    pub to: String,
    pub status: DialStatus,
    /// The final SIP status of a refused call (e.g. 486, 503; 408 when
    /// nobody answered the INVITE at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_status: Option<u16>,
    /// Whether the far end hung up (for completed calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hung_up_by: Option<&'static str>,
    /// Where a transferred call went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<String>,
    /// Unix milliseconds.
    pub created_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// Who placed it (only they may see it).
    #[serde(skip)]
    pub tenant_id: String,
    /// The campaign that placed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Who answered (with answering-machine detection on): `human`,
    /// `machine` or `unknown`, with the evidence and when it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amd: Option<voxgate_pipeline::dsp::amd::Detection>,
}

/// Why a call could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot dial {0}")]
    BadTarget(String),
    #[error("cannot resolve {0}")]
    Unreachable(String),
    #[error("no RTP port: {0}")]
    NoMedia(String),
    /// The target is not the trunk's, nor on `dial.allowed_hosts`.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The tenant is at one of its `dial` limits.
    #[error("{0}")]
    Limit(String),
}
