//! The media of one SIP call, whichever side placed it: the RTP and RTCP
//! sockets and the call's clock. The call core ([`CallCore`]) does the
//! media, the RTP endpoint (sans-IO, in sip-bridge) the packets, and the
//! call's signalling ([`SipLeg`]) runs alongside in the same task.
//!
//! ```text
//! RTP in -> RtpEndpoint (latch, payload types, keys) -> CallCore -> RtpEndpoint (SSRC, seq) -> RTP out
//! ```
//!
//! One 20 ms tick is the call's clock: on each, the RTP that arrived since
//! the last tick is read (with the kernel's arrival times; see
//! [`super::rtp_socket`]) and the core answers with the agent's frame. One
//! task wake-up a frame, both ways.
//!
//! A warm transfer calls the human on a leg of its own ([`super::consult`]);
//! once they are joined, each tick's caller frame goes to that leg and the
//! human's frames come back to the core, which sends them to the caller.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxgate_codecs::dtmf::DtmfKey;
use voxgate_pipeline::call::{
    Action, Arrival, CallClock, CallCore, CallError, Leg, MediaFrame, MediaKind, Output, Wake, now,
};
use voxgate_pipeline::dsp::amd::Detection;
use voxgate_pipeline::dsp::jitter::RtpPacket as JitterPacket;
use voxgate_pipeline::session::{CallLog, Control, TransferFailure, TransferOutcome};
use voxgate_pipeline::timer::DeadlineTimer;
use voxgate_sip_bridge::call::{Dialog, DialogOutput, MediaEvent};
use voxgate_sip_bridge::message::Message;
use voxgate_sip_bridge::rtp::endpoint::{Incoming, RtpEndpoint};
use voxgate_sip_bridge::rtp::peer::{MediaPeer, OwnAddresses};
use voxgate_sip_bridge::rtp::stats::ntp_now;
use voxgate_sip_bridge::sdp::{self, Codec, Negotiated};

use super::consult::{Consult, FromHuman};
use super::rtp_socket::{MAX_PER_TICK, TickedSocket};
use super::{Peer, Shared, Signal, rand_u32};
use crate::calls::{CallContext, Carrier};
use crate::config::MediaConfig;
use voxgate_calls::agent::CallAgent;
use voxgate_calls::rooms::RoomCall;

/// The codecs we offer and accept, best first.
pub(super) const CODECS: [Codec; 4] = [Codec::G722, Codec::Pcmu, Codec::Pcma, Codec::Opus];

/// What a call we placed tells its dialler as it goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Progress<'a> {
    /// Who answered (answering-machine detection).
    Detected(&'a Detection),
    /// The caller was joined to a human (a warm transfer).
    Joined { target: &'a str },
}

/// Where a leg's RTP goes: the call core, or a warm transfer's human leg.
pub(super) trait MediaSink {
    fn packet(&mut self, at: Instant, packet: JitterPacket<'_>);
    fn key(&mut self, now: Instant, key: DtmfKey);
}

impl MediaSink for CallCore {
    fn packet(&mut self, at: Instant, packet: JitterPacket<'_>) {
        self.handle_packet(at, packet);
    }

    fn key(&mut self, now: Instant, key: DtmfKey) {
        self.handle_control(now, Control::Dtmf(key));
    }
}

impl MediaSink for Leg {
    fn packet(&mut self, at: Instant, packet: JitterPacket<'_>) {
        self.handle_packet(at, packet);
    }

    /// The human's keys do nothing.
    fn key(&mut self, _: Instant, _: DtmfKey) {}
}

/// What sees a dialog's events first.
type Observer<E> = Box<dyn FnMut(&E) + Send>;

/// A call's signalling and where its messages go.
pub(super) struct SipLeg<D: Dialog> {
    pub dialog: D,
    peer: Peer,
    /// The sender of the message just handled: its refusal goes there.
    sender: Option<Peer>,
    socket: Arc<UdpSocket>,
    /// Sees each event first (an outbound call reports its progress).
    observe: Observer<D::Event>,
    /// `cancel` has hung the call up (once: a hang-up still waiting for
    /// its answer must not be asked again, or the wait never yields).
    hung_up: bool,
}

impl<D: Dialog> SipLeg<D> {
    pub(super) fn new(dialog: D, peer: Peer, socket: Arc<UdpSocket>) -> Self {
        Self { dialog, peer, sender: None, socket, observe: Box::new(|_| {}), hung_up: false }
    }

    /// Calls `observe` with every event, before anyone else sees it.
    pub(super) fn observed(self, observe: impl FnMut(&D::Event) + Send + 'static) -> Self {
        Self { observe: Box::new(observe), ..self }
    }

    pub(super) fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Requests and answers go to `peer` from now on (a remote target).
    pub(super) fn set_peer(&mut self, peer: Peer) {
        self.peer = peer;
    }

    pub(super) fn handle_message(&mut self, now: Instant, message: Message, from: Peer) {
        self.sender = Some(from);
        self.dialog.handle_message(now, message);
    }

    /// Sends what is due; returns the events.
    pub(super) fn flush(&mut self) -> Vec<D::Event> {
        let mut events = Vec::new();
        while let Some(output) = self.dialog.poll_output() {
            match output {
                DialogOutput::Send(bytes) => self.peer.send(&self.socket, bytes),
                DialogOutput::Refuse(bytes) => {
                    self.sender.as_ref().unwrap_or(&self.peer).send(&self.socket, bytes)
                }
                DialogOutput::Event(e) => {
                    (self.observe)(&e);
                    events.push(e);
                }
            }
        }
        events
    }

    /// Waits for the next message or timer (or `cancel`: hang up), then
    /// sends what follows; `None` once the signalling loop is gone.
    pub(super) async fn step(
        &mut self,
        signalling: &mut mpsc::Receiver<Signal>,
        cancel: &CancellationToken,
    ) -> Option<Vec<D::Event>> {
        let next = self.dialog.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = cancel.cancelled(), if !self.dialog.is_ended() && !self.hung_up => {
                self.hung_up = true;
                self.dialog.hangup(now());
            }
            msg = signalling.recv() => match msg {
                Some((m, from)) => self.handle_message(now(), m, from),
                None => return None,
            },
            () = super::sleep_until(next) => self.dialog.handle_timeout(now()),
        }
        Some(self.flush())
    }
}

/// A call's RTP and RTCP sockets, bound before the SDP is written.
pub(super) struct RtpSockets {
    pub rtp: UdpSocket,
    /// On the next port; without it, reports are skipped.
    pub rtcp: Option<UdpSocket>,
    /// The address our SDP names.
    pub advertised: IpAddr,
    pub port: u16,
}

impl RtpSockets {
    /// Binds a pair on a free even port of the configured range: on the
    /// advertised address, or every interface when SIP listens on all.
    pub(super) async fn bind(
        config: &MediaConfig,
        advertised: IpAddr,
    ) -> Result<Self, crate::error::StartError> {
        let ip = if config.sip.udp_listen.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            advertised
        };
        let rtp = crate::calls::bind_media_port(config, ip).await?;
        let port = rtp.local_addr()?.port();
        let rtcp = UdpSocket::bind(SocketAddr::new(rtp.local_addr()?.ip(), port + 1)).await.ok();
        Ok(Self { rtp, rtcp, advertised, port })
    }
}

/// The sockets and the RTP endpoint of a call.
pub(super) struct Rtp {
    rtp: TickedSocket,
    /// Reports come every few seconds: read at our own report's turn.
    rtcp: Option<TickedSocket>,
    endpoint: RtpEndpoint,
    /// Where our SDP says we are, for a re-INVITE's answer.
    advertised: IpAddr,
    /// A re-INVITE keeps the call as it began: SRTP stays SRTP (no
    /// downgrade), plain RTP stays plain.
    srtp: sdp::Srtp,
    port: u16,
    buf: Vec<u8>,
}

impl Rtp {
    /// The media of a call whose signalling peer is at `signalling`, as
    /// `negotiated`: where it goes, and whose packets are the far end's
    /// (latched, sans-IO in sip-bridge).
    pub(super) fn open(
        shared: &Shared,
        signalling: IpAddr,
        sockets: RtpSockets,
        negotiated: Negotiated,
    ) -> std::io::Result<Self> {
        let RtpSockets { rtp, rtcp, advertised, port } = sockets;
        let own = OwnAddresses {
            ips: vec![advertised, rtp.local_addr()?.ip()],
            ports: vec![shared.sip_port, port, port + 1],
        };
        let no_media = Duration::from_secs(u64::from(shared.calls.config.rtp.no_media_timeout_s));
        let peer = MediaPeer::new(negotiated.remote, Some(signalling), own, no_media);
        let srtp = if negotiated.srtp.is_some() { sdp::Srtp::Require } else { sdp::Srtp::Off };
        let endpoint = RtpEndpoint::new(negotiated, peer, rand_u32(), rand_u32() as u16)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self {
            rtp: TickedSocket::new(rtp)?,
            rtcp: rtcp.and_then(|s| TickedSocket::new(s).ok()),
            endpoint,
            advertised,
            srtp,
            port,
            buf: vec![0; 2048],
        })
    }

    /// The codec both sides agreed on.
    pub(super) fn codec(&self) -> voxgate_codecs::Codec {
        self.negotiated_codec().media()
    }

    /// The same, as SDP names it.
    pub(super) fn negotiated_codec(&self) -> Codec {
        self.endpoint.negotiated().codec
    }

    /// The far end has confirmed the call (its ACK): media may go to it.
    pub(super) fn endpoint_confirm(&mut self) {
        self.endpoint.confirm(now());
    }

    /// What the far end sent since the last tick, into `sink`.
    pub(super) fn receive(&mut self, sink: &mut impl MediaSink, now: Instant) {
        for _ in 0..MAX_PER_TICK {
            let Some(got) = self.rtp.try_recv(&mut self.buf) else { break };
            match self.endpoint.handle_datagram(got.at, got.from, &self.buf[..got.len]) {
                Incoming::Audio(p) => {
                    let packet = JitterPacket {
                        seq: p.seq,
                        timestamp: p.timestamp,
                        ssrc: p.ssrc,
                        marker: p.marker,
                        payload: p.payload,
                    };
                    sink.packet(got.at, packet);
                }
                Incoming::Key(key) => sink.key(now, key),
                Incoming::Nothing => {}
            }
        }
    }

    pub(super) fn send(&mut self, now: Instant, frame: &MediaFrame<'_>) {
        let event = frame.kind == MediaKind::TelephoneEvent;
        // RTP carries the media clock's low 32 bits.
        let timestamp = frame.timestamp as u32;
        if let Some((bytes, dest)) = self.endpoint.write(now, event, frame.payload, timestamp, frame.marker) {
            self.rtp.send_to(bytes, dest);
        }
    }

    /// Reads the peer's reports and sends ours (with a BYE once `ending`),
    /// with the far end's jitter (ms) and our media clock's `timestamp` now.
    pub(super) fn report(&mut self, (jitter_ms, timestamp): (f64, u64), ending: bool) {
        let rate = self.codec().clock_rate();
        let Some(socket) = self.rtcp.as_mut() else { return };
        for _ in 0..MAX_PER_TICK {
            let Some(got) = socket.try_recv(&mut self.buf) else { break };
            self.endpoint.handle_rtcp(got.at, &self.buf[..got.len]);
        }
        let now = now();
        // RTCP's jitter counts RTP clock units (8000 Hz for G.722's 16 kHz audio).
        let jitter = (jitter_ms * f64::from(rate) / 1000.0) as u32;
        let timestamp = timestamp as u32;
        if let Some((bytes, dest)) = self.endpoint.report(now, ntp_now(), timestamp, jitter, ending) {
            socket.send_to(bytes, dest);
        }
    }

    /// Answers a re-INVITE: another of `codecs` or address, or hold and
    /// resume; `change_codec` switches the media to the codec agreed on
    /// (true: a new stream, at another rate).
    pub(super) fn reinvite(
        &mut self,
        dialog: &mut impl Dialog,
        offer: Option<&str>,
        codecs: &[Codec],
        change_codec: impl FnOnce(voxgate_codecs::Codec, u32) -> Result<bool, CallError>,
    ) {
        let (answer, settled) = sdp::reanswer(offer, codecs, self.advertised, self.port, self.srtp);
        if let Some(negotiated) = settled {
            let new_stream = match change_codec(negotiated.codec.media(), rand_u32()) {
                Ok(rate_changed) => rate_changed.then(|| (rand_u32(), rand_u32() as u16)),
                Err(e) => {
                    tracing::warn!(error = %e, "the re-INVITE's codec cannot be set up; keeping ours");
                    None
                }
            };
            if let Err(e) = self.endpoint.renegotiate(negotiated, new_stream) {
                tracing::warn!(error = %e, "the re-INVITE's keys cannot be set up; keeping ours");
            }
        }
        dialog.answer_reinvite(now(), &answer);
    }
}

/// The agent hands the caller to `target`: a call placed for a room moves
/// them through the room, and the agent leaves it; any other call REFERs them.
fn transfer(calls: &CallContext, room: Option<&RoomCall>, dialog: &mut impl Dialog, target: &str) {
    if let (Some(room), Some(rooms)) = (room, &calls.rooms) {
        tracing::info!(%target, room = %room.room, "transfer through the room");
        let (rooms, room, target) = (rooms.clone(), room.clone(), target.to_owned());
        tokio::spawn(async move { rooms.transfer(&room, &target).await });
        dialog.hangup(now());
    } else {
        tracing::info!(%target, "blind transfer (REFER)");
        // The REFER, not a BYE, ends the dialog.
        dialog.transfer(now(), target);
    }
}

/// Runs a call's media and its signalling until both are over; returns
/// the call log. A call placed for a `room` transfers through the room;
/// what a call we placed learns goes to `progress`.
pub(super) async fn run<D: Dialog>(
    shared: &Arc<Shared>,
    (id, agent, room): (&str, &CallAgent, Option<&RoomCall>),
    leg: &mut SipLeg<D>,
    sockets: RtpSockets,
    negotiated: Negotiated,
    (signalling, cancel): (&mut mpsc::Receiver<Signal>, &CancellationToken),
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<CallLog, super::CallFailed> {
    let calls = &shared.calls;
    let no_media = Duration::from_secs(u64::from(calls.config.rtp.no_media_timeout_s));
    let carrier = Carrier {
        codec: negotiated.codec.media(),
        arrival: Arrival::Packets(calls.config.jitter()),
        telephone_events: negotiated.dtmf_payload_type.is_some(),
        no_media: Some(no_media),
    };
    let mut media = Rtp::open(shared, leg.peer().addr().ip(), sockets, negotiated)?;
    let mut core = calls.start_core(id, agent, carrier)?;
    if leg.dialog.is_confirmed() {
        media.endpoint_confirm();
    }
    // A warm transfer's call to the human, while there is one.
    let mut human: Option<Consult> = None;
    let (mut clock, mut dialog_timer) = (CallClock::new(), DeadlineTimer::new());
    let mut reports = tokio::time::interval(Duration::from_secs(5));
    // We asked the dialog to end (a hang-up, or a transfer).
    let mut ending = false;
    loop {
        dialog_timer.set_std(leg.dialog.poll_timeout());
        tokio::select! {
            () = cancel.cancelled(), if !ending => {
                ending = true;
                leg.dialog.hangup(now());
            }
            msg = signalling.recv() => match msg {
                Some((m, from)) => leg.handle_message(now(), m, from),
                None => break,
            },
            () = dialog_timer.fired() => leg.dialog.handle_timeout(now()),
            wake = clock.wait(&mut core) => if let Wake::Tick(now) = wake {
                media.receive(&mut core, now);
                core.handle_tick(now);
                if let Some(human) = human.as_ref().filter(|_| core.is_bridged()) {
                    human.hear(core.caller_frame());
                }
            },
            event = Consult::next(&mut human) => {
                from_human(&mut core, &mut human, event, progress);
                // The human hung up on the bridge (or its leg failed): so do we.
                if core.is_bridged() && human.is_none() && !ending {
                    ending = true;
                    leg.dialog.hangup(now());
                }
            }
            _ = reports.tick() => media.report((core.caller_jitter_ms(), core.media_timestamp(now())), ending),
        }
        while let Some(output) = core.poll_output() {
            match output {
                Output::Media(frame) => media.send(now(), &frame),
                Output::Action(Action::Transfer { target }) => {
                    ending = true;
                    transfer(calls, room, &mut leg.dialog, &target);
                }
                Output::Action(Action::WarmTransfer { target, announcement }) => {
                    tracing::info!(call_id = %id, %target, "warm transfer: calling the human");
                    human = Some(Consult::start(shared, agent, target, announcement, cancel.child_token()));
                }
                Output::Action(Action::HangUp) if !ending => {
                    ending = true;
                    leg.dialog.hangup(now());
                }
                Output::Action(Action::Dtmf { .. }) => {
                    tracing::warn!("the far end takes no telephone-events; keys not sent");
                }
                Output::Action(Action::AnsweringMachine(detection)) => {
                    progress(Progress::Detected(&detection));
                }
                Output::Action(_) => {}
            }
        }
        // Answering an event (a re-INVITE) may give the dialog more to send.
        while let events = leg.flush()
            && !events.is_empty()
        {
            for event in events.iter().filter_map(D::media_event) {
                match event {
                    MediaEvent::Ended => {
                        tracing::info!("signalling ended");
                        ending = true;
                        core.hang_up(now());
                    }
                    MediaEvent::Dtmf(c) => {
                        if let Some(key) = DtmfKey::from_char(c) {
                            core.handle_control(now(), Control::Dtmf(key));
                        }
                    }
                    MediaEvent::Confirmed => media.endpoint_confirm(),
                    MediaEvent::ReInvite { offer } => {
                        media.reinvite(&mut leg.dialog, offer.as_deref(), &CODECS, |codec, ts| {
                            core.change_codec(codec, ts)
                        });
                    }
                }
            }
        }
        if leg.dialog.is_ended() {
            break;
        }
    }
    // A human leg still up hangs up as `human` drops.
    Ok(core.finish(now()))
}

/// What the human's leg of a warm transfer reports, carried out on the
/// caller's call; `human` is gone once that leg is over.
fn from_human(
    core: &mut CallCore,
    human: &mut Option<Consult>,
    event: Option<FromHuman>,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) {
    match event {
        Some(FromHuman::Heard(frame)) => core.send_bridged(now(), &frame),
        Some(FromHuman::Connected { target }) => {
            if core.handle_transfer(now(), TransferOutcome::Connected) {
                progress(Progress::Joined { target: &target });
            } else {
                // The caller is gone meanwhile (or no longer waiting).
                *human = None;
            }
        }
        Some(FromHuman::Failed(reason)) => {
            core.handle_transfer(now(), TransferOutcome::Failed(reason));
            *human = None;
        }
        // Its task ended: before the join, as a failure.
        None => {
            if !core.is_bridged() {
                core.handle_transfer(now(), TransferOutcome::Failed(TransferFailure::Failed));
            }
            *human = None;
        }
    }
}
