//! The media of one call, whichever side placed it: RTP in and out of a
//! pipeline session, RTCP, DTMF, and the call's signalling ([`Dialog`])
//! driven alongside.
//!
//! ```text
//! RTP in -> latch source -> jitter buffer + decoder -> 8/48 kHz -> 16 kHz -> session
//! session -> 16 kHz -> 8/48 kHz -> encoder -> RTP out (after the ACK, to the
//! latched source or the SDP's address: voxgate_sip_bridge::rtp::peer)
//! ```
//!
//! One 20 ms tick is the call's clock: on each, the RTP that arrived since
//! the last tick is read (with the kernel's arrival times; see
//! [`super::rtp_socket`]), a caller frame (silence if nothing decodes) goes
//! to the session, called right here ([`Session`]), and the agent's frame
//! it answers with goes out. One task wake-up a frame, both ways.

use crate::agent::Agent;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use voxgate_codecs::dtmf::TelephoneEvent;
use voxgate_pipeline::dsp::jitter::RtpPacket as JitterPacket;
use voxgate_pipeline::metrics::metrics;
use voxgate_pipeline::session::{CallLog, Control, Frame, Session, SessionEvent, SessionParts};
use voxgate_pipeline::timer::DeadlineTimer;
use voxgate_sip_bridge::message::Message;
use voxgate_sip_bridge::rtp::clock::Talkspurts;
use voxgate_sip_bridge::rtp::dtmf::DtmfSender;
use voxgate_sip_bridge::rtp::peer::{MediaPeer, OwnAddresses};
use voxgate_sip_bridge::rtp::rtcp::{self, Report, SenderInfo};
use voxgate_sip_bridge::rtp::stats::{ReceiverStats, ntp_now};
use voxgate_sip_bridge::rtp::{self, RtpPacket};
use voxgate_sip_bridge::sdp::{self, Codec, Negotiated, Sdp};

use super::rtp_socket::{MAX_PER_TICK, TickedSocket};
use super::{Peer, Shared, Signal, rand_u32};
use crate::audio::Media;
use crate::config::Config;

/// The codecs we offer and accept, best first.
pub(super) const CODECS: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

/// What a call's signalling tells the media side.
#[derive(Debug)]
pub(super) enum DialogEvent {
    /// The dialog is over (either side hung up, or it failed).
    Ended,
    /// A DTMF digit by SIP INFO.
    Dtmf(char),
    /// A re-INVITE to answer (`None`: the offer is ours to make).
    ReInvite { offer: Option<String> },
    /// The caller's ACK confirmed the answer: media may go out.
    Confirmed,
}

/// The signalling of a call in progress, inbound or outbound: the
/// sans-IO state machine and where its messages go.
pub(super) trait Dialog {
    /// A message with this call's Call-ID, from `from` (the peer, or a stranger).
    fn handle_message(&mut self, now: Instant, message: Message, from: Peer);
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn hangup(&mut self, now: Instant);
    /// Blind transfer to `target` (REFER).
    fn transfer(&mut self, now: Instant, target: &str);
    fn answer_reinvite(&mut self, now: Instant, sdp: &str);
    fn is_ended(&self) -> bool;
    /// Whether media may go out already (an outbound call is answered; an
    /// inbound one waits for the caller's ACK, [`DialogEvent::Confirmed`]).
    fn is_confirmed(&self) -> bool;
    /// The IP the peer's signalling comes from (its media may, behind NAT).
    fn signalling_ip(&self) -> IpAddr;
    /// Sends what is due and returns what happened.
    fn flush(&mut self) -> Vec<DialogEvent>;
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
    pub(super) async fn bind(config: &Config, advertised: IpAddr) -> anyhow::Result<Self> {
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

/// Runs a call's media and its signalling until both are over; returns
/// the session's call log.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    shared: &Shared,
    agent: &Agent,
    dialog: &mut impl Dialog,
    sockets: RtpSockets,
    mut negotiated: Negotiated,
    recording: PathBuf,
    signalling: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
) -> anyhow::Result<CallLog> {
    let config = &shared.calls.config;
    let RtpSockets { rtp: rtp_socket, rtcp: rtcp_socket, advertised, port: rtp_port } = sockets;
    let local_ip = rtp_socket.local_addr()?.ip();
    let mut rtp_socket = TickedSocket::new(rtp_socket)?;
    // Reports come every few seconds: read at our own report's turn.
    let mut rtcp_socket = rtcp_socket.and_then(|s| TickedSocket::new(s).ok());
    let jitter = crate::audio::jitter_config(config);
    let mut media = Media::new(negotiated.codec, jitter)?;
    let vad = voxgate_pipeline::dsp::vad::build(&config.vad_config())?;
    let mut session = Session::start(SessionParts {
        config: agent.session.clone(),
        providers: agent.providers.clone(),
        vad,
        recording: Some(recording),
    });

    let no_media = Duration::from_secs(u64::from(config.rtp.no_media_timeout_s));
    // Where media goes and whose packets are the caller's (sans-IO, in sip-bridge).
    let own = OwnAddresses {
        ips: vec![advertised, local_ip],
        ports: vec![shared.sip_port, rtp_port, rtp_port + 1],
    };
    let mut peer = MediaPeer::new(negotiated.remote, Some(dialog.signalling_ip()), own, no_media);
    if dialog.is_confirmed() {
        peer.confirm(Instant::now());
    }
    let mut last_rtp = Instant::now();
    let mut tick = tokio::time::interval_at(crate::audio::first_tick(), crate::audio::FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let samples_per_frame = media.rate.samples_per_frame() as u32;
    let mut sender = RtpSender::new(media.rate.hz(), samples_per_frame);
    let mut last_dtmf: Option<u32> = None;
    let mut rtp_buf = vec![0u8; 2048];
    let mut pcm = vec![0i16; 960];
    let mut frame16 = [0i16; 320];
    let mut hung_up = false;
    let mut rx_stats = ReceiverStats::default();
    let mut reports = tokio::time::interval(Duration::from_secs(5));
    let mut rtcp_buf = vec![0u8; 1500];
    let mut report_buf = vec![0u8; 1500];
    let mut dtmf_out = DtmfSender::new(samples_per_frame as u16);
    let mut event_ts = 0;
    // Built once, not per turn of the loop.
    let mut dialog_timer = DeadlineTimer::new();
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        dialog_timer.set_std(dialog.poll_timeout());
        tokio::select! {
            () = &mut cancelled, if !hung_up => {
                hung_up = true;
                dialog.hangup(Instant::now());
            }
            msg = signalling.recv() => match msg {
                Some((m, from)) => dialog.handle_message(Instant::now(), m, from),
                None => break,
            },
            () = dialog_timer.fired() => dialog.handle_timeout(Instant::now()),
            deadline = tick.tick() => {
                metrics().media_tick_lateness.observe(deadline.elapsed().as_secs_f64());
                // What the caller sent since the last tick, then a caller
                // frame every tick, silence when none decodes: the agent's
                // frames follow these.
                for _ in 0..MAX_PER_TICK {
                    let Some(got) = rtp_socket.try_recv(&mut rtp_buf) else { break };
                    let bytes = &rtp_buf[..got.len];
                    if rtp::is_rtcp(bytes) {
                        // RTCP multiplexed on the RTP port (RFC 5761).
                        read_rtcp(bytes, got.at, &mut rx_stats);
                        continue;
                    }
                    let Ok(p) = RtpPacket::parse(bytes) else { continue };
                    // Strict latching: a packet of another source is not the caller's (RTP Bleed).
                    let ours = p.payload_type == negotiated.payload_type || Some(p.payload_type) == negotiated.dtmf_payload_type;
                    if !ours || !peer.accept(got.from) {
                        continue;
                    }
                    last_rtp = got.at;
                    if Some(p.payload_type) == negotiated.dtmf_payload_type {
                        if let Ok(ev) = TelephoneEvent::decode(p.payload)
                            && ev.end
                            && last_dtmf != Some(p.timestamp)
                            && let Some(key) = ev.key()
                        {
                            last_dtmf = Some(p.timestamp);
                            session.handle_control(Control::Dtmf(key));
                        }
                    } else if p.payload_type == negotiated.payload_type {
                        rx_stats.on_packet(p.ssrc, p.seq);
                        let packet = JitterPacket { seq: p.seq, timestamp: p.timestamp, ssrc: p.ssrc, marker: p.marker, payload: p.payload };
                        media.playout.handle_packet(got.at, packet);
                    }
                }
                let n = media.playout.frame_samples();
                if media.playout.poll_frame(Instant::now(), &mut pcm[..n]).is_err()
                    || media.inbound.process(&pcm[..n], &mut frame16).is_err()
                {
                    frame16 = [0; 320];
                }
                session.handle_caller_frame(&frame16);
                if !hung_up && last_rtp.elapsed() > no_media {
                    tracing::info!("no RTP for {} s: hanging up", no_media.as_secs());
                    hung_up = true;
                    dialog.hangup(Instant::now());
                    session.handle_control(Control::NoMedia);
                }
                // Keys the agent presses: one telephone-event packet per tick,
                // the RTP clock running on through the keys and the gaps.
                if dtmf_out.is_active() {
                    let dest = peer.destination(Instant::now());
                    let (now_ts, _) = sender.clock.next(Instant::now());
                    if let (Some(event), Some(pt), Some(dest)) = (dtmf_out.tick(), negotiated.dtmf_payload_type, dest) {
                        if event.first {
                            event_ts = now_ts;
                        }
                        if let Some(packet) = sender.packet(event.first, pt, event_ts, &event.payload) {
                            rtp_socket.send_to(packet, dest);
                        }
                    }
                    // The agent's audio after the keys starts a talkspurt.
                    sender.clock.mark();
                }
            }
            _ = reports.tick() => {
                if let Some(socket) = rtcp_socket.as_mut() {
                    for _ in 0..MAX_PER_TICK {
                        let Some(got) = socket.try_recv(&mut rtcp_buf) else { break };
                        read_rtcp(&rtcp_buf[..got.len], got.at, &mut rx_stats);
                    }
                }
                let dest = peer.destination(Instant::now()).map(|a| SocketAddr::new(a.ip(), a.port() + 1));
                if let (Some(socket), Some(dest)) = (rtcp_socket.as_ref(), dest) {
                    let jitter = (media.playout.jitter().stats().jitter_ms * f64::from(media.rate.hz()) / 1000.0) as u32;
                    let report = Report {
                        ssrc: sender.ssrc,
                        sender: (sender.packets > 0).then(|| SenderInfo { ntp: ntp_now(), rtp_timestamp: sender.clock.at(Instant::now()), packets: sender.packets, octets: sender.octets }),
                        blocks: rx_stats.report(Instant::now(), jitter).into_iter().collect(),
                    };
                    if let Ok(n) = report.write(hung_up, &mut report_buf) {
                        socket.send_to(&report_buf[..n], dest);
                    }
                }
            }
            // What the providers send, and the turn timers.
            () = session.next_input(), if !session.is_ended() => {}
        }
        // The agent's frames due now, and what the session asks of the call.
        while let Some(frame) = session.poll_frame() {
            // Keys are sounding: the agent's audio waits its turn (it is
            // dropped; the agent rarely talks while it presses keys).
            if let Some(dest) = peer.destination(Instant::now())
                && !dtmf_out.is_active()
                && let Some(packet) = sender.audio(&mut media, &frame, negotiated.payload_type)
            {
                rtp_socket.send_to(packet, dest);
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                // Barge-in: the next talkspurt starts with a marker.
                SessionEvent::Clear => sender.clock.mark(),
                SessionEvent::Transfer { target } => {
                    tracing::info!(%target, "blind transfer (REFER)");
                    // The session has ended; the REFER, not a BYE, ends the dialog.
                    hung_up = true;
                    dialog.transfer(Instant::now(), &target);
                }
                SessionEvent::Dtmf { digits } => {
                    if negotiated.dtmf_payload_type.is_some() {
                        dtmf_out.push(&digits);
                    } else {
                        tracing::warn!("the far end takes no telephone-events; keys not sent");
                    }
                }
                SessionEvent::Transcript { .. } | SessionEvent::Ended(_) => {}
            }
        }
        if session.is_ended() && !hung_up {
            hung_up = true;
            dialog.hangup(Instant::now());
        }
        // Answering an event (a re-INVITE) may give the dialog more to send.
        while let events = dialog.flush()
            && !events.is_empty()
        {
            for event in events {
                match event {
                    DialogEvent::Ended => {
                        tracing::info!("signalling ended");
                        session.handle_control(Control::Hangup);
                        hung_up = true;
                    }
                    DialogEvent::Dtmf(c) => {
                        if let Some(key) = voxgate_codecs::dtmf::DtmfKey::from_char(c) {
                            session.handle_control(Control::Dtmf(key));
                        }
                    }
                    DialogEvent::Confirmed => peer.confirm(Instant::now()),
                    DialogEvent::ReInvite { offer } => {
                        let answered = offer
                            .as_deref()
                            .and_then(|o| Sdp::parse(o).ok())
                            .and_then(|o| sdp::answer(&o, &CODECS, advertised, rtp_port).ok());
                        let now = Instant::now();
                        if let Some((answer, n)) = answered {
                            if n.codec != negotiated.codec
                                && let Ok(m) = Media::new(n.codec, jitter)
                            {
                                if m.rate != media.rate {
                                    // Another RTP clock rate: a new stream, its own SSRC
                                    // and timestamps (RFC 7160, section 4.1).
                                    let samples = m.rate.samples_per_frame() as u32;
                                    sender = RtpSender::new(m.rate.hz(), samples);
                                    dtmf_out = DtmfSender::new(samples as u16);
                                }
                                media = m;
                            }
                            negotiated = n;
                            peer.move_to(negotiated.remote);
                            dialog.answer_reinvite(now, &answer.to_text());
                        } else {
                            dialog.answer_reinvite(now, &sdp::offer(advertised, rtp_port, 1).to_text());
                        }
                    }
                }
            }
        }
        if dialog.is_ended() {
            // Hung up by either side: the session ends with the dialog.
            session.handle_control(Control::Hangup);
            break;
        }
    }
    Ok(session.finish())
}

/// Our RTP stream to the caller: the agent's audio and its keys.
struct RtpSender {
    ssrc: u32,
    seq: u16,
    /// Timestamps move on through the agent's pauses; each talkspurt is marked.
    clock: Talkspurts,
    /// Sent so far, for RTCP sender reports.
    packets: u32,
    octets: u32,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    out: Vec<u8>,
}

impl RtpSender {
    fn new(rate_hz: u32, samples_per_frame: u32) -> Self {
        Self {
            ssrc: rand_u32(),
            seq: rand_u32() as u16,
            clock: Talkspurts::new(rand_u32(), rate_hz, samples_per_frame),
            packets: 0,
            octets: 0,
            pcm: vec![0; 960],
            payload: vec![0; 1500],
            out: vec![0; 1500],
        }
    }

    /// One agent frame, encoded and stamped on the talkspurt clock: the packet.
    fn audio(&mut self, media: &mut Media, frame: &Frame, payload_type: u8) -> Option<&[u8]> {
        let len = media.encode(frame, &mut self.pcm, &mut self.payload).ok()?;
        let (timestamp, marker) = self.clock.next(Instant::now());
        let packet = RtpPacket {
            marker,
            payload_type,
            seq: self.seq,
            timestamp,
            ssrc: self.ssrc,
            payload: &self.payload[..len],
        };
        let n = packet.write(&mut self.out).ok()?;
        self.count(len);
        Some(&self.out[..n])
    }

    /// A packet of `payload` as it is (telephone-events).
    fn packet(&mut self, marker: bool, payload_type: u8, timestamp: u32, payload: &[u8]) -> Option<&[u8]> {
        let packet = RtpPacket { marker, payload_type, seq: self.seq, timestamp, ssrc: self.ssrc, payload };
        let n = packet.write(&mut self.out).ok()?;
        self.count(payload.len());
        Some(&self.out[..n])
    }

    fn count(&mut self, payload_len: usize) {
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }
}

/// Reads a peer's RTCP, which arrived `at`: its sender reports time our
/// round-trip measurement; its reception reports say how our audio arrives.
fn read_rtcp(bytes: &[u8], at: Instant, rx_stats: &mut ReceiverStats) {
    let Ok(received) = rtcp::parse(bytes) else { return };
    for report in received.reports {
        if let Some(sender) = report.sender {
            rx_stats.on_sender_report(sender.ntp, at);
        }
        for block in report.blocks {
            tracing::debug!(
                fraction_lost = block.fraction_lost,
                cumulative_lost = block.cumulative_lost,
                jitter = block.jitter,
                "RTCP: the caller's view of our audio"
            );
        }
    }
}
