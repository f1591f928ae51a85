//! Calls we place: `SipDialer::dial` sends an INVITE through the trunk (with
//! Digest credentials when it asks), reports ringing, answer and the
//! outcome (answered / busy / no answer / failed), and once answered runs
//! the same media bridge and agent session as an inbound call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxgate_sip_bridge::call::outbound::{Dial, OutboundCall, OutboundEvent, Outcome};
use voxgate_sip_bridge::sdp::{self, Sdp};

use super::media::{self, CODECS, RtpSockets, SipLeg};
use super::trunk::{self, Route};
use super::{DialogTable, Peer, Shared, Signal, host_port, rand_u32};
use crate::calls::CallContext;
use voxgate_calls::agent::CallAgent;
use voxgate_calls::dial::{DialError, DialStatus, Dialer, OutboundStatus};
use voxgate_domain::{CallId, CallInfo, Channel, Direction};
use voxgate_pipeline::dsp::amd::Detection;

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
        let t = &shared.calls.config.trunk;
        let route = trunk::route(t, to)?;
        trunk::check_allowed(t, &shared.calls.config.dial, &route)?;
        // A place among the node's calls, held until the call's task ends.
        let seat =
            shared.calls.admit(Channel::Sip, &agent).map_err(|full| DialError::Limit(full.to_string()))?;
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
        let call_cancel = self.cancel.child_token();
        let (peer, transport, port) = signalling_to(shared, (&hop, hop_addr), tls, &call_cancel).await?;
        let local = host_port(sockets.advertised, port);
        let user = if t.username.is_empty() { "voxgate" } else { &t.username };
        let from = voxgate_sip_bridge::message::Uri::parse(&t.aor)
            .or_else(|_| voxgate_sip_bridge::message::Uri::parse(&format!("sip:{user}@{local}")))
            .map_err(|e| DialError::BadTarget(e.to_string()))?;
        let dial = Dial {
            target: target.clone(),
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
        // The call's id is ours; its SIP Call-ID is another random value.
        let id = CallId::random().into_string();
        let sip_call_id = format!("{:032x}@voxgate", rand::random::<u128>());
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
        let (tx, rx) = mpsc::channel(32);
        // Open the dialog before the INVITE leaves, so no answer is missed.
        let _ = shared.dialogs.send(DialogTable::Open(sip_call_id.clone(), tx)).await;
        let to = voxgate_calls::redact::number(
            match &target {
                voxgate_sip_bridge::message::Uri::Sip(u) => u.user_decoded(),
                _ => None,
            }
            .as_deref(),
            shared.calls.config.show_pii,
        );
        tracing::info!(call_id = %id, to = %to, via = %hop_addr, "placing a call");
        let call = run(
            self.clone(),
            agent,
            dial,
            (id, sip_call_id.clone()),
            peer,
            direct,
            (sockets, srtp),
            rx,
            call_cancel,
        );
        let call = async move {
            let _seat = seat;
            call.await;
        };
        super::spawn_call(shared, sip_call_id, call);
        Ok(status)
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
                    DialStatus::Completed
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
#[allow(clippy::too_many_arguments)]
async fn run(
    dialer: SipDialer,
    agent: CallAgent,
    dial: Dial,
    (id, sip_call_id): (String, String),
    peer: Peer,
    direct: bool,
    (sockets, srtp): (RtpSockets, sdp::Srtp),
    mut signalling: mpsc::Receiver<Signal>,
    cancel: CancellationToken,
) {
    let shared = dialer.shared.clone();
    let ours = sdp::offer(sockets.advertised, sockets.port, u64::from(rand_u32()), srtp);
    let tag = format!("vg{:016x}", rand::random::<u64>());
    let call = OutboundCall::new(std::time::Instant::now(), dial, &sip_call_id, &tag, &ours.to_text());
    let reporter = (dialer.clone(), id.clone());
    // Its TLS connection, if any, closes when the call ends.
    let _done = cancel.clone().drop_guard();
    let over_udp = matches!(peer, Peer::Udp(_));
    let mut out =
        SipLeg::new(call, peer, shared.socket.clone()).observed(move |e| report(&reporter.0, &reporter.1, e));
    out.flush();
    // Until the far end answers (or the call ends without an answer).
    let answer = loop {
        let Some(events) = out.step(&mut signalling, &cancel).await else {
            // The signalling loop is gone (the server is stopping).
            out.dialog.hangup(std::time::Instant::now());
            out.flush();
            return;
        };
        if let Some(sdp) = events.iter().find_map(|e| match e {
            OutboundEvent::Answered { sdp } => Some(sdp.clone()),
            _ => None,
        }) {
            break sdp;
        }
        if out.dialog.is_ended() {
            return;
        }
    };
    // With no proxy in the way, the dialog continues at the far end's
    // Contact (over TLS, on the connection we have).
    if direct
        && over_udp
        && let Some(contact) = out.dialog.remote_target().cloned()
        && let Ok(addr) = trunk::resolve(&contact, false).await
    {
        out.set_peer(Peer::Udp(addr));
    }
    let negotiated = match Sdp::parse(&answer).and_then(|a| sdp::accept_answer(&a, &CODECS, &ours)) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "the answer's SDP is unusable; hanging up");
            out.dialog.hangup(std::time::Instant::now());
            while !out.dialog.is_ended() {
                if out.step(&mut signalling, &cancel).await.is_none() {
                    break;
                }
            }
            return;
        }
    };
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
    let detected = |d: &Detection| dialer.update(&id, |s| s.amd = Some(d.clone()));
    let result = media::run(
        &shared,
        (&id, &agent, None),
        &mut out,
        sockets,
        negotiated,
        (&mut signalling, &cancel),
        &detected,
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
