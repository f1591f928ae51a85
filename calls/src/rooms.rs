//! Calls into rooms of another media server (LiveKit): the control plane
//! asks that server's SIP service to dial one of its agents' numbers here
//! with a single-use dispatch token in a header ([`DISPATCH_HEADER`]); the
//! media plane claims the token when the call arrives, runs the call as
//! any SIP call of that agent, and tells [`Rooms`] how it ended.

use voxgate_pipeline::session::EndReason;

/// The SIP header that carries a dispatch token.
pub const DISPATCH_HEADER: &str = "X-Voxgate-Dispatch";

/// A call placed into a room for one agent.
#[derive(Debug, Clone)]
pub struct RoomCall {
    /// The dispatch's id (not its token: ids are logged, tokens never).
    pub dispatch_id: String,
    /// The room's name in LiveKit.
    pub room: String,
    /// The agent that takes the call ([`crate::agent::CONFIGURED`] or an id).
    pub agent: String,
    /// Cancelled when the room ends: the call hangs up.
    pub hang_up: tokio_util::sync::CancellationToken,
}

/// The dispatches the control plane made, and what becomes of their calls.
#[async_trait::async_trait]
pub trait Rooms: Send + Sync + std::fmt::Debug {
    /// The dispatch `token` names, claimed: `None` when there is none, it
    /// was claimed already, or it expired. A token works once.
    fn claim(&self, token: &str) -> Option<RoomCall>;

    /// The agent of `call` hands its caller to `target` (a number or a
    /// SIP URI) through the room, in place of a SIP REFER.
    async fn transfer(&self, call: &RoomCall, target: &str);

    /// `call` ended so (`None`: before it was answered, or it failed):
    /// the agent leaves the room.
    async fn ended(&self, call: &RoomCall, end: Option<&EndReason>);
}
