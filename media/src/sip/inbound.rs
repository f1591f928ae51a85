//! A call from a phone: answer the INVITE (after ringing, if configured),
//! negotiate the codec, then hand the call to the media bridge.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::ChannelLabel;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voxgate_sip_bridge::call::{CallEvent, InboundCall};
use voxgate_sip_bridge::check::Checked;
use voxgate_sip_bridge::message::Request;
use voxgate_sip_bridge::sdp::{self, Negotiated, Sdp};

use super::CallFailed;
use super::media::{self, CODECS, RtpSockets, SipLeg};
use super::{Peer, Shared, Signal, host_port, rand_u32};
use crate::calls::CallContext;
use voxgate_calls::agent::CallAgent;
use voxgate_calls::rooms::{DISPATCH_HEADER, RoomCall};
use voxgate_domain::{CallId, CallInfo, Channel};

/// An inbound call's signalling and where its messages go.
type Inbound = SipLeg<InboundCall>;

/// Waits for the next message or timer, then sends what follows.
async fn step(
    inbound: &mut Inbound,
    signalling: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
) -> Result<Vec<CallEvent>, CallFailed> {
    inbound.step(signalling, cancel).await.ok_or(CallFailed::SignallingClosed)
}

/// An INVITE that starts a call.
pub(super) struct Invite {
    pub request: Request,
    pub checked: Checked,
    /// When it arrived, for the call-setup metric.
    pub received: std::time::Instant,
    /// The agent the dialled number routes to ([`voxgate_calls::agent::CONFIGURED`] or an id).
    pub agent: String,
}

/// Runs one inbound call from its checked INVITE to the end.
pub(super) async fn run_call(
    shared: Arc<Shared>,
    Invite { request: invite, checked, received, agent }: Invite,
    peer: Peer,
    mut signalling: mpsc::Receiver<Signal>,
    cancel: CancellationToken,
) {
    let call_id = checked.call_id.clone();
    let tag = format!("vg{:016x}", rand::random::<u64>());
    let advertised = shared.advertised_for(peer.addr());
    // A call over TLS continues over TLS: our Contact names the TLS port.
    let (local, contact) = match shared.tls_port.filter(|_| peer.is_tls()) {
        Some(port) => {
            let local = host_port(advertised, port);
            let contact = format!("sip:voxgate@{local};transport=tls");
            (local, contact)
        }
        None => {
            let local = host_port(advertised, shared.sip_port);
            (local.clone(), format!("sip:voxgate@{local}"))
        }
    };
    let call = InboundCall::new(invite.clone(), checked, &tag, &contact, &local);
    // Over TCP or TLS the connection carries our messages: only a 2xx is resent.
    let call = if matches!(peer, Peer::Udp(_)) { call } else { call.over_connection() };
    let mut inbound = SipLeg::new(call, peer, shared.socket.clone());
    inbound.flush();
    let agent_id = agent;
    let agent = match shared.calls.agents.get(&agent_id).await {
        Ok(agent) => agent,
        Err(e) => {
            // Routed a moment ago; deleted since, or unbuildable (a model missing).
            tracing::warn!(sip_call_id = %call_id, error = %e, "no agent for the call");
            inbound.dialog.reject(std::time::Instant::now(), 480, "Temporarily Unavailable");
            inbound.flush();
            return;
        }
    };
    // A call LiveKit's SIP service places for a room carries its dispatch's token.
    let Ok(room) = claim_room(&shared, &invite, &agent_id) else {
        tracing::warn!(sip_call_id = %call_id, "a dispatch token that is unknown, used or not this number's");
        inbound.dialog.reject(std::time::Instant::now(), 403, "Forbidden");
        inbound.flush();
        finish_signalling(&mut inbound, &mut signalling, &cancel).await;
        return;
    };
    if let Some(room) = &room {
        hang_up_with_the_room(room, &cancel);
    }
    // Ends what waits on the call's token (the room's watch) when the call is over.
    let _done = cancel.clone().drop_guard();
    // Within the limits, or refused before anything is taken for it.
    let _seat = match shared.calls.admit(Channel::Sip, &agent) {
        Ok(seat) => seat,
        Err(full) => {
            let (status, reason) = full.sip_status();
            let mut headers = vec![("Reason", full.sip_reason())];
            if full.passing() {
                headers.push(("Retry-After", shared.calls.admission.retry_after_s().to_string()));
            }
            inbound.dialog.reject_with(std::time::Instant::now(), status, reason, &headers);
            inbound.flush();
            leave_room(&shared, room.as_ref(), None).await;
            finish_signalling(&mut inbound, &mut signalling, &cancel).await;
            return;
        }
    };
    // Our id for the call; the caller chose its Call-ID (and may reuse one).
    let mut info = CallContext::inbound(CallId::random(), Channel::Sip, &agent);
    info.external_id = Some(call_id.clone());
    tracing::info!(call_id = %info.id, sip_call_id = %call_id, "call taken");
    info.caller = invite.headers.get("from").and_then(user_part);
    info.callee = invite.headers.get("to").and_then(user_part);
    info.room = room.as_ref().map(|r| r.room.clone());
    let call = (&agent, &info, room.as_ref());
    let log = match answer(&shared, call, &mut inbound, &invite, received, &mut signalling, &cancel).await {
        Ok(None) => {
            tracing::info!(call_id = %info.id, "call ended before it was answered");
            None
        }
        Ok(Some(log)) => {
            shared.calls.ended(&info, &log).await;
            Some(log)
        }
        Err(e) => {
            tracing::warn!(call_id = %info.id, error = %e, "call failed");
            inbound.dialog.hangup(std::time::Instant::now());
            inbound.flush();
            None
        }
    };
    leave_room(&shared, room.as_ref(), log.as_ref().map(|l| &l.end)).await;
}

/// Tells the room a call for it ended so (`None`: never answered).
async fn leave_room(
    shared: &Shared,
    room: Option<&RoomCall>,
    end: Option<&voxgate_pipeline::session::EndReason>,
) {
    if let (Some(room), Some(rooms)) = (room, &shared.calls.rooms) {
        rooms.ended(room, end).await;
    }
}

/// The room call whose dispatch token `invite` carries, claimed; `None`
/// when it carries none.
///
/// # Errors
/// The token is unknown, used, expired, or for another agent than the
/// dialled number's (`routed`).
fn claim_room(shared: &Shared, invite: &Request, routed: &str) -> Result<Option<RoomCall>, ()> {
    let Some(token) = invite.headers.get(DISPATCH_HEADER) else {
        return Ok(None);
    };
    match shared.calls.rooms.as_ref().and_then(|rooms| rooms.claim(token.trim())) {
        Some(call) if call.agent == routed => {
            tracing::info!(dispatch = %call.dispatch_id, room = %call.room, "a call for a room");
            Ok(Some(call))
        }
        _ => Err(()),
    }
}

/// Hangs the call `cancel` belongs to up when `room` ends.
fn hang_up_with_the_room(room: &RoomCall, cancel: &CancellationToken) {
    let (room_ended, call) = (room.hang_up.clone(), cancel.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = room_ended.cancelled() => {
                tracing::info!("the room ended: hanging up");
                call.cancel();
            }
            () = call.cancelled() => {}
        }
    });
}

/// Rings, answers with our SDP, and runs the media of `call` (the agent
/// taking it, and who is calling whom); `None` when the caller cancelled first.
async fn answer(
    shared: &Arc<Shared>,
    (agent, info, room): (&CallAgent, &CallInfo, Option<&RoomCall>),
    inbound: &mut Inbound,
    invite: &Request,
    received: std::time::Instant,
    signalling: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
) -> Result<Option<voxgate_pipeline::session::CallLog>, CallFailed> {
    let config = &shared.calls.config;
    let mode = agent.srtp.unwrap_or(config.rtp.srtp);
    let Some(srtp) = super::media_security(mode, inbound.peer().is_tls()) else {
        tracing::info!(call_id = %info.id, "refused: the agent requires SRTP, and the call is not over TLS");
        inbound.dialog.reject(std::time::Instant::now(), 488, "Not Acceptable Here");
        inbound.flush();
        return Err(
            voxgate_sip_bridge::sdp::SdpError::Srtp("SRTP required, and the call is not over TLS").into()
        );
    };
    let sockets = RtpSockets::bind(config, shared.advertised_for(inbound.peer().addr())).await?;
    let (advertised, rtp_port) = (sockets.advertised, sockets.port);
    // Usually the INVITE carries the offer; without one, ours goes in the
    // 200 and the caller's answer comes in the ACK (RFC 3261 §13.2.1).
    let (local_sdp, early) = if invite.body.is_empty() {
        (sdp::offer(advertised, rtp_port, u64::from(rand_u32()), srtp), None)
    } else {
        let answered = Sdp::parse(&String::from_utf8_lossy(&invite.body))
            .and_then(|offer| sdp::answer(&offer, &CODECS, advertised, rtp_port, srtp));
        match answered {
            Ok((answer, n)) => (answer, Some(n)),
            Err(e) => {
                inbound.dialog.reject(std::time::Instant::now(), 488, "Not Acceptable Here");
                inbound.flush();
                return Err(e.into());
            }
        }
    };
    if config.sip.ring_ms > 0 {
        inbound.dialog.ring();
        inbound.flush();
        // The caller may cancel while it rings.
        let ring = tokio::time::sleep(Duration::from_millis(u64::from(config.sip.ring_ms)));
        tokio::pin!(ring);
        loop {
            let events = tokio::select! {
                () = &mut ring => break,
                e = step(inbound, signalling, cancel) => e?,
            };
            if events.iter().any(|e| matches!(e, CallEvent::Ended(_))) {
                // Cancelled: the 487 still waits for its ACK.
                finish_signalling(inbound, signalling, cancel).await;
                return Ok(None);
            }
        }
    }
    inbound.dialog.answer(std::time::Instant::now(), &local_sdp.to_text());
    inbound.flush();
    let setup = crate::metrics::metrics();
    setup
        .call_setup
        .get_or_create(&ChannelLabel::from(Channel::Sip))
        .observe(received.elapsed().as_secs_f64());
    // Media starts with the caller's ACK, never before: the agent's first
    // words go to an address the caller has confirmed.
    let negotiated = match early {
        Some(n) => {
            wait_for_ack(inbound, signalling, cancel).await?;
            n
        }
        None => answer_in_ack(inbound, signalling, cancel, &local_sdp).await?,
    };
    let srtp = negotiated.srtp.as_ref().map(|k| k.local.suite.name());
    tracing::info!(call_id = %info.id, codec = ?negotiated.codec, srtp = srtp.unwrap_or("off"), "call answered");
    shared.calls.started(info).await;
    let log = media::run(
        shared,
        (&info.id, agent, room),
        inbound,
        sockets,
        negotiated,
        (signalling, cancel),
        &|_| {},
    )
    .await?;
    Ok(Some(log))
}

/// Waits for the ACK that carries the caller's answer to our offer (`ours`).
async fn answer_in_ack(
    inbound: &mut Inbound,
    signalling: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
    ours: &Sdp,
) -> Result<Negotiated, CallFailed> {
    loop {
        for event in step(inbound, signalling, cancel).await? {
            match event {
                CallEvent::Confirmed { sdp } => {
                    let answer = sdp.ok_or(CallFailed::NoAnswerInAck)?;
                    return Ok(sdp::accept_answer(&Sdp::parse(&answer)?, &CODECS, ours)?);
                }
                CallEvent::Ended(cause) => return Err(CallFailed::EndedBeforeAck(format!("{cause:?}"))),
                _ => {}
            }
        }
    }
}

/// Steps the signalling until the caller's ACK confirms the answer.
async fn wait_for_ack(
    inbound: &mut Inbound,
    signalling: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
) -> Result<(), CallFailed> {
    loop {
        for event in step(inbound, signalling, cancel).await? {
            match event {
                CallEvent::Confirmed { .. } => return Ok(()),
                CallEvent::Ended(cause) => return Err(CallFailed::EndedBeforeAck(format!("{cause:?}"))),
                _ => {}
            }
        }
    }
}

/// Runs the signalling of a call that ended before it was answered (the
/// final response waits for its ACK).
async fn finish_signalling(
    inbound: &mut Inbound,
    signalling: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
) {
    let deadline = Instant::now() + voxgate_sip_bridge::call::TIMEOUT;
    while inbound.dialog.poll_timeout().is_some() && Instant::now() < deadline {
        if inbound.step(signalling, cancel).await.is_none() {
            break;
        }
    }
}

/// The user (a number, usually) of a From or To header; a `tel:` URI's number.
fn user_part(header: &str) -> Option<String> {
    use voxgate_sip_bridge::message::{NameAddr, Uri};
    match NameAddr::parse(header, "From").ok()?.uri {
        Uri::Sip(u) => u.user_decoded().filter(|u| !u.is_empty()),
        Uri::Tel(n) => Some(n.split(';').next().unwrap_or_default().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_caller_is_the_from_user() {
        assert_eq!(
            super::user_part("\"Ann\" <sip:+15550100@pbx.example>;tag=1").as_deref(),
            Some("+15550100")
        );
        assert_eq!(super::user_part("<tel:+15550100;phone-context=x>").as_deref(), Some("+15550100"));
        assert_eq!(super::user_part("sip:pbx.example"), None);
    }
}
