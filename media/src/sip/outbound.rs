//! Calls we place: `SipDialer::dial` sends an INVITE through the trunk (with
//! Digest credentials when it asks), reports ringing, answer and the
//! outcome (answered / busy / no answer / failed), and once answered runs
//! the same media bridge and agent session as an inbound call. A warm
//! transfer's call to the human ([`super::consult`]) is placed the same
//! way: [`prepare`], [`Placing::open`], [`Opened::invite`], [`Ringing::answered`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxgate_sip_bridge::call::outbound::{Dial, OutboundCall, OutboundEvent, Outcome};
use voxgate_sip_bridge::sdp::{self, Negotiated, Sdp};

use super::media::{self, CODECS, Progress, RtpSockets, SipLeg};
use super::trunk::{self, Route};
use super::{DialogTable, Peer, Shared, Signal, host_port, rand_u32};
use crate::calls::CallContext;
use voxgate_calls::agent::CallAgent;
use voxgate_calls::dial::{DialError, DialStatus, Dialer, OutboundStatus};
use voxgate_domain::{CallId, CallInfo, Channel, Direction};

/// Outbound calls kept for the API; the oldest finished ones go first.
const KEPT_CALLS: usize = 10_000;

/// Places outbound calls; cheap to clone.
#[derive(Clone)]
pub struct SipDialer {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    calls: Arc<Mutex<HashMap<String, OutboundStatus>>>,
}

fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for SipDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipDialer").finish_non_exhaustive()
    }
}

impl SipDialer {
    pub(super) fn new(shared: Arc<Shared>, cancel: CancellationToken) -> Self {
        Self { shared, cancel, calls: Arc::default() }
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut OutboundStatus)) {
        if let Ok(mut calls) = self.calls.lock()
            && let Some(s) = calls.get_mut(id)
        {
            change(s);
        }
    }
}

/// Calls out through the trunk: an INVITE (with Digest credentials when it
/// asks), then the same media bridge and agent session as an inbound call.
#[async_trait::async_trait]
impl Dialer for SipDialer {
    fn status(&self, id: &str) -> Option<OutboundStatus> {
        self.calls.lock().ok()?.get(id).cloned()
    }

    async fn dial(
        &self,
        tenant_id: &str,
        agent: CallAgent,
        to: &str,
        ring_timeout: Option<Duration>,
        campaign_id: Option<String>,
    ) -> Result<OutboundStatus, DialError> {
        let shared = &self.shared;
        // A place among the node's calls, held until the call's task ends.
        let seat =
            shared.calls.admit(Channel::Sip, &agent).map_err(|full| DialError::Limit(full.to_string()))?;
        let call_cancel = self.cancel.child_token();
        let placing = prepare(shared, &agent, to, ring_timeout, &call_cancel).await?;
        let (target, via) = (placing.dial.target.clone(), placing.hop);
        // The call's id is ours; its SIP Call-ID is another random value.
        let id = CallId::random().into_string();
        let status = OutboundStatus {
            id: id.clone(),
            to: target.to_string(),
            status: DialStatus::Dialing,
            sip_status: None,
            hung_up_by: None,
            transferred_to: None,
            created_at: unix_ms(),
            tenant_id: tenant_id.to_owned(),
            answered_at: None,
            ended_at: None,
            campaign_id,
            amd: None,
        };
        if let Ok(mut calls) = self.calls.lock() {
            // Checked and counted under one lock: two requests at once cannot both take the last place.
            within_limits(&calls, &shared.calls.config.dial, tenant_id, status.created_at)?;
            if calls.len() >= KEPT_CALLS
                && let Some(oldest) = calls
                    .values()
                    .filter(|c| c.status.is_final())
                    .min_by_key(|c| c.created_at)
                    .map(|c| c.id.clone())
            {
                calls.remove(&oldest);
            }
            calls.insert(id.clone(), status.clone());
        }
        let (placing, sip_call_id) = placing.open(shared).await;
        let to = voxgate_calls::redact::number(
            match &target {
                voxgate_sip_bridge::message::Uri::Sip(u) => u.user_decoded(),
                _ => None,
            }
            .as_deref(),
            shared.calls.config.show_pii,
        );
        tracing::info!(call_id = %id, to = %to, via = %via, "placing a call");
        let call = run(self.clone(), agent, placing, id, call_cancel);
        let call = async move {
            let _seat = seat;
            call.await;
        };
        super::spawn_call(shared, sip_call_id, call);
        Ok(status)
    }
}

/// A call of ours, ready to be placed: its route checked against the
/// trunk's rules, its RTP sockets bound, its signalling connected (over
/// TLS) and its INVITE's headers settled.
pub(super) struct Placing {
    dial: Dial,
    peer: Peer,
    /// The next hop's address.
    hop: std::net::SocketAddr,
    /// No proxy in the way: the dialog continues at the far end's Contact.
    direct: bool,
    sockets: RtpSockets,
    srtp: sdp::Srtp,
}

/// Sets up a call to `to` for `agent`, through the trunk and within its
/// rules (`dial.allowed_hosts`, SRTP only over TLS). `cancel` closes its
/// TLS connection, if it has one.
pub(super) async fn prepare(
    shared: &Shared,
    agent: &CallAgent,
    to: &str,
    ring_timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> Result<Placing, DialError> {
    let t = &shared.calls.config.trunk;
    let route = trunk::route(t, to)?;
    trunk::check_allowed(t, &shared.calls.config.dial, &route)?;
    // SDES keys go only where the signalling is TLS.
    let mode = t.srtp.or(agent.srtp).unwrap_or(shared.calls.config.rtp.srtp);
    let srtp = super::media_security(mode, route.tls).ok_or_else(|| {
        DialError::NotAllowed(
            "SRTP is required, and the call would not go over TLS (sips: or transport=tls)".into(),
        )
    })?;
    let (credentials, realm) = trunk::credentials(t, &route);
    let Route { target, hop, tls } = route;
    let hop_addr = trunk::resolve(&hop, tls).await?;
    let direct = hop == target;
    let sockets = RtpSockets::bind(&shared.calls.config, shared.advertised_for(hop_addr))
        .await
        .map_err(|e| DialError::NoMedia(e.to_string()))?;
    let (peer, transport, port) = signalling_to(shared, (&hop, hop_addr), tls, cancel).await?;
    let local = host_port(sockets.advertised, port);
    let user = if t.username.is_empty() { "voxgate" } else { &t.username };
    let from = voxgate_sip_bridge::message::Uri::parse(&t.aor)
        .or_else(|_| voxgate_sip_bridge::message::Uri::parse(&format!("sip:{user}@{local}")))
        .map_err(|e| DialError::BadTarget(e.to_string()))?;
    let dial = Dial {
        target,
        from,
        contact: if tls {
            format!("sip:{user}@{local};transport=tls")
        } else {
            format!("sip:{user}@{local}")
        },
        via_host: local,
        transport: transport.into(),
        credentials,
        realm,
        ring_timeout: ring_timeout.unwrap_or(Duration::from_secs(u64::from(t.ring_timeout_s))),
    };
    Ok(Placing { dial, peer, hop: hop_addr, direct, sockets, srtp })
}

/// A placed call's signalling: the Call-ID the signalling loop routes by,
/// and the channel its messages come on.
pub(super) struct Opened {
    placing: Placing,
    sip_call_id: String,
    signalling: mpsc::Receiver<Signal>,
}

impl Placing {
    /// Opens the call's dialog in the signalling loop's table (before its
    /// INVITE leaves, so no answer is missed); with its SIP Call-ID (a
    /// random value, never our call's id).
    pub(super) async fn open(self, shared: &Shared) -> (Opened, String) {
        let sip_call_id = format!("{:032x}@voxgate", rand::random::<u128>());
        let (tx, signalling) = mpsc::channel(32);
        let _ = shared.dialogs.send(DialogTable::Open(sip_call_id.clone(), tx)).await;
        (Opened { placing: self, sip_call_id: sip_call_id.clone(), signalling }, sip_call_id)
    }
}

/// A placed call until the far end answers.
pub(super) struct Ringing {
    pub out: SipLeg<OutboundCall>,
    pub signalling: mpsc::Receiver<Signal>,
    pub sockets: RtpSockets,
    ours: Sdp,
    direct: bool,
}

/// Why a placed call has no media.
#[derive(Debug)]
pub(super) enum Unanswered {
    /// It ended unanswered (busy, no answer, refused).
    Ended(Outcome),
    /// It was cancelled, or the server is stopping.
    Stopped,
    /// The answer's SDP is unusable; we hung up.
    BadAnswer,
}

impl Opened {
    /// Sends the INVITE; `observe` sees each event of the dialog first.
    pub(super) fn invite(
        self,
        shared: &Shared,
        observe: impl FnMut(&OutboundEvent) + Send + 'static,
    ) -> Ringing {
        let Opened { placing, sip_call_id, signalling } = self;
        let ours =
            sdp::offer(placing.sockets.advertised, placing.sockets.port, u64::from(rand_u32()), placing.srtp);
        let tag = format!("vg{:016x}", rand::random::<u64>());
        let call =
            OutboundCall::new(std::time::Instant::now(), placing.dial, &sip_call_id, &tag, &ours.to_text());
        // Over UDP with no proxy, the far end's Contact takes the dialog on.
        let direct = placing.direct && matches!(placing.peer, Peer::Udp(_));
        let mut out = SipLeg::new(call, placing.peer, shared.socket.clone()).observed(observe);
        out.flush();
        Ringing { out, signalling, sockets: placing.sockets, ours, direct }
    }
}

impl Ringing {
    /// Waits for the answer: the media both sides agreed on, or why there
    /// is none (the dialog is then over, or being hung up).
    pub(super) async fn answered(&mut self, cancel: &CancellationToken) -> Result<Negotiated, Unanswered> {
        let answer = loop {
            let Some(events) = self.out.step(&mut self.signalling, cancel).await else {
                // The signalling loop is gone (the server is stopping).
                self.out.dialog.hangup(std::time::Instant::now());
                self.out.flush();
                return Err(Unanswered::Stopped);
            };
            if let Some(sdp) = events.iter().find_map(|e| match e {
                OutboundEvent::Answered { sdp } => Some(sdp.clone()),
                _ => None,
            }) {
                break sdp;
            }
            if self.out.dialog.is_ended() {
                let outcome = events.into_iter().find_map(|e| match e {
                    OutboundEvent::Ended(outcome) => Some(outcome),
                    _ => None,
                });
                return Err(outcome.map_or(Unanswered::Stopped, Unanswered::Ended));
            }
        };
        // With no proxy in the way, the dialog continues at the far end's
        // Contact (over TLS, on the connection we have).
        if self.direct
            && let Some(contact) = self.out.dialog.remote_target().cloned()
            && let Ok(addr) = trunk::resolve(&contact, false).await
        {
            self.out.set_peer(Peer::Udp(addr));
        }
        match Sdp::parse(&answer).and_then(|a| sdp::accept_answer(&a, &CODECS, &self.ours)) {
            Ok(n) => Ok(n),
            Err(e) => {
                tracing::warn!(error = %e, "the answer's SDP is unusable; hanging up");
                self.out.dialog.hangup(std::time::Instant::now());
                while !self.out.dialog.is_ended() {
                    if self.out.step(&mut self.signalling, cancel).await.is_none() {
                        break;
                    }
                }
                Err(Unanswered::BadAnswer)
            }
        }
    }
}

/// Where a call's signalling goes: over UDP, or over a TLS connection of
/// its own (closed with `cancel`); with Via's transport and our port for it.
async fn signalling_to(
    shared: &Shared,
    (hop, addr): (&voxgate_sip_bridge::message::Uri, std::net::SocketAddr),
    tls: bool,
    cancel: &CancellationToken,
) -> Result<(Peer, &'static str, u16), DialError> {
    if !tls {
        return Ok((Peer::Udp(addr), "UDP", shared.sip_port));
    }
    let peer = trunk::connect(shared, hop, addr, cancel.clone())
        .await
        .map_err(|e| DialError::Unreachable(e.to_string()))?;
    Ok((peer, "TLS", shared.tls_port.unwrap_or(shared.sip_port)))
}

/// Refuses a call that would take `tenant_id` past `dial`'s limits: calls
/// up at once, and calls placed in the last 24 hours (of those kept).
fn within_limits(
    calls: &HashMap<String, OutboundStatus>,
    dial: &crate::config::DialSettings,
    tenant_id: &str,
    now_ms: u64,
) -> Result<(), DialError> {
    let theirs = || calls.values().filter(|c| c.tenant_id == tenant_id);
    let up = theirs().filter(|c| !c.status.is_final()).count();
    if dial.max_concurrent_per_tenant > 0 && up >= dial.max_concurrent_per_tenant as usize {
        return Err(DialError::Limit(format!(
            "{up} outbound calls are up: at most {} at once (dial.max_concurrent_per_tenant)",
            dial.max_concurrent_per_tenant
        )));
    }
    let day_ago = now_ms.saturating_sub(24 * 3600 * 1000);
    let today = theirs().filter(|c| c.created_at > day_ago).count();
    if dial.max_per_day_per_tenant > 0 && today >= dial.max_per_day_per_tenant as usize {
        return Err(DialError::Limit(format!(
            "{today} outbound calls in 24 hours: at most {} (dial.max_per_day_per_tenant)",
            dial.max_per_day_per_tenant
        )));
    }
    Ok(())
}

/// Reports an outbound call's progress to the dialer.
fn report(dialer: &SipDialer, id: &str, event: &OutboundEvent) {
    let now = unix_ms();
    dialer.update(id, |s| match event {
        OutboundEvent::Ringing => s.status = DialStatus::Ringing,
        OutboundEvent::Answered { .. } => {
            s.status = DialStatus::Answered;
            s.answered_at = Some(now);
        }
        OutboundEvent::Ended(outcome) => {
            s.ended_at = Some(now);
            s.status = match outcome {
                Outcome::Completed { by_remote } => {
                    s.hung_up_by = Some(if *by_remote { "remote" } else { "agent" });
                    // Joined to a human (a warm transfer), then hung up.
                    if s.transferred_to.is_some() { DialStatus::Transferred } else { DialStatus::Completed }
                }
                Outcome::Transferred { target } => {
                    s.transferred_to = Some(target.clone());
                    DialStatus::Transferred
                }
                Outcome::Busy => DialStatus::Busy,
                Outcome::NoAnswer => DialStatus::NoAnswer,
                Outcome::Failed { status } => {
                    s.sip_status = Some(*status);
                    DialStatus::Failed
                }
            };
            tracing::info!(call_id = %s.id, outcome = ?outcome, "outbound call ended");
        }
        OutboundEvent::Dtmf(_) | OutboundEvent::ReInvite { .. } => {}
    });
}

/// Runs one outbound call: rings, and once answered, the agent talks.
async fn run(dialer: SipDialer, agent: CallAgent, placing: Opened, id: String, cancel: CancellationToken) {
    let shared = dialer.shared.clone();
    let sip_call_id = placing.sip_call_id.clone();
    let reporter = (dialer.clone(), id.clone());
    // Its TLS connection, if any, closes when the call ends.
    let _done = cancel.clone().drop_guard();
    let mut ringing = placing.invite(&shared, move |e| report(&reporter.0, &reporter.1, e));
    let negotiated = match ringing.answered(&cancel).await {
        Ok(n) => n,
        Err(why) => {
            tracing::debug!(call_id = %id, ?why, "the call was not answered");
            return;
        }
    };
    let Ringing { mut out, mut signalling, sockets, .. } = ringing;
    let srtp = negotiated.srtp.as_ref().map(|k| k.local.suite.name());
    tracing::info!(call_id = %id, codec = ?negotiated.codec, srtp = srtp.unwrap_or("off"), "call answered");
    let placed = dialer.status(&id);
    let info = CallInfo {
        direction: Direction::Outbound,
        callee: placed.as_ref().map(|s| s.to.clone()),
        tenant_id: placed.as_ref().map(|s| s.tenant_id.clone().into()),
        campaign_id: placed.and_then(|s| s.campaign_id),
        external_id: Some(sip_call_id),
        ..CallContext::inbound(id.clone().into(), Channel::Sip, &agent)
    };
    shared.calls.started(&info).await;
    // Only the calls we place listen for an answering machine first.
    let mut agent = agent;
    agent.session.answering_machine = agent.answering_machine.clone();
    let progress = |p: Progress<'_>| match p {
        Progress::Detected(d) => dialer.update(&id, |s| s.amd = Some(d.clone())),
        Progress::Joined { target } => dialer.update(&id, |s| s.transferred_to = Some(target.to_owned())),
    };
    let result = media::run(
        &shared,
        (&id, &agent, None),
        &mut out,
        sockets,
        negotiated,
        (&mut signalling, &cancel),
        &progress,
    )
    .await;
    match result {
        Ok(log) => shared.calls.ended(&info, &log).await,
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "outbound call failed");
            out.dialog.hangup(std::time::Instant::now());
            out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{DialError, DialStatus, OutboundStatus, within_limits};

    fn placed(tenant: &str, status: DialStatus, created_at: u64) -> OutboundStatus {
        OutboundStatus {
            id: format!("call_{tenant}_{created_at}"),
            to: "sip:x@trunk.test".into(),
            status,
            sip_status: None,
            hung_up_by: None,
            transferred_to: None,
            created_at,
            answered_at: None,
            ended_at: None,
            tenant_id: tenant.into(),
            campaign_id: None,
            amd: None,
        }
    }

    #[test]
    fn a_tenant_is_held_to_its_concurrent_and_daily_outbound_calls() {
        let dial = crate::config::DialSettings {
            allowed_hosts: vec![],
            max_concurrent_per_tenant: 2,
            max_per_day_per_tenant: 3,
        };
        let now = 10 * 24 * 3600 * 1000;
        let mut calls = HashMap::new();
        for c in [placed("a", DialStatus::Ringing, now - 1000), placed("b", DialStatus::Answered, now - 500)]
        {
            calls.insert(c.id.clone(), c);
        }
        assert!(within_limits(&calls, &dial, "a", now).is_ok());
        let c = placed("a", DialStatus::Dialing, now - 10);
        calls.insert(c.id.clone(), c);
        assert!(matches!(within_limits(&calls, &dial, "a", now), Err(DialError::Limit(_))), "two up");
        assert!(within_limits(&calls, &dial, "b", now).is_ok(), "another tenant's calls do not count");
        // Both end; a third, finished today, makes the day's three.
        for c in calls.values_mut() {
            c.status = DialStatus::Completed;
        }
        let c = placed("a", DialStatus::NoAnswer, now - 20 * 3600 * 1000);
        calls.insert(c.id.clone(), c);
        assert!(matches!(within_limits(&calls, &dial, "a", now), Err(DialError::Limit(_))), "three today");
        // A day later, they no longer count.
        assert!(within_limits(&calls, &dial, "a", now + 24 * 3600 * 1000).is_ok());
        let unlimited =
            crate::config::DialSettings { max_concurrent_per_tenant: 0, max_per_day_per_tenant: 0, ..dial };
        assert!(within_limits(&calls, &unlimited, "a", now).is_ok());
    }

    #[test]
    fn a_status_reads_the_same_as_its_json() {
        use DialStatus::*;
        for s in [Dialing, Ringing, Answered, Completed, Transferred, Busy, NoAnswer, Failed] {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
        }
    }
}
