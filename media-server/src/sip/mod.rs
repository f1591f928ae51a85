//! Phone calls: the SIP socket, and one task per call that bridges its RTP
//! to a pipeline session.
//!
//! The signalling loop parses each datagram once: messages of a call in
//! progress (by Call-ID) go to that call's task; everything else goes to
//! the [`Responder`] (OPTIONS, refusals, routing). A call task owns its
//! [`InboundCall`] (signalling), its RTP socket and its session:
//!
//! ```text
//! RTP in -> latch source -> jitter buffer + decoder -> 8/48 kHz -> 16 kHz -> session
//! session (paced 20 ms) -> 16 kHz -> 8/48 kHz -> encoder -> RTP out (to the latched source)
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use voxgate_codecs::dtmf::TelephoneEvent;
use voxgate_codecs::g711::G711Law;
use voxgate_codecs::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{AudioDecoder, G711Decoder, SampleRate};
use voxgate_pipeline::dsp::jitter::{JitterConfig, RtpPacket as JitterPacket};
use voxgate_pipeline::dsp::playout::AudioPlayout;
use voxgate_pipeline::session::{self, CallLog, Control, Frame, SessionEvent, SessionParts};
use voxgate_sip_bridge::call::{CallEvent, CallOutput, EndCause, InboundCall};
use voxgate_sip_bridge::check::Checked;
use voxgate_sip_bridge::message::{self, Framing, Message, Request};
use voxgate_sip_bridge::registration::{Account, Registration, RegistrationEvent, RegistrationOutput};
use voxgate_sip_bridge::responder::{Action, Responder};
use voxgate_sip_bridge::rtp::rtcp::{self, Report, SenderInfo};
use voxgate_sip_bridge::rtp::stats::{ReceiverStats, ntp_now};
use voxgate_sip_bridge::rtp::{self, RtpPacket};
use voxgate_sip_bridge::sdp::{self, Codec, Negotiated, Sdp};

use crate::agent::Agent;
use crate::config::Config;

/// Where a message came from, and so where its answers go.
#[derive(Debug, Clone)]
enum Peer {
    Udp(SocketAddr),
    /// A TCP connection: its address and its writer.
    Tcp(SocketAddr, mpsc::Sender<Vec<u8>>),
}

impl Peer {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp(a) | Self::Tcp(a, _) => *a,
        }
    }

    /// Sends in order without waiting (a full UDP buffer or TCP queue
    /// drops the message; retransmission covers UDP).
    fn send(&self, socket: &UdpSocket, bytes: Vec<u8>) {
        let result = match self {
            Self::Udp(a) => socket.try_send_to(&bytes, *a).map(|_| ()).map_err(|e| e.to_string()),
            Self::Tcp(_, tx) => tx.try_send(bytes).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::debug!(peer = %self.addr(), error = %e, "SIP send failed");
        }
    }

    fn framing(&self) -> Framing {
        match self {
            Self::Udp(_) => Framing::Datagram,
            Self::Tcp(..) => Framing::Stream,
        }
    }
}

/// What every call task shares.
struct Shared {
    config: Config,
    agent: Agent,
    socket: Arc<UdpSocket>,
    /// The address written into Contact, Via and SDP ...
    advertised: IpAddr,
    /// ... always (a public address or a specific listen address), or only
    /// when no route to the caller says better.
    explicit: bool,
    sip_port: u16,
}

impl Shared {
    /// The address a caller at `peer` should send to: the configured one,
    /// or the local interface the system routes to `peer` through (so a
    /// phone on the LAN gets the LAN address, one on this machine loopback).
    fn advertised_for(&self, peer: SocketAddr) -> IpAddr {
        if self.explicit {
            return self.advertised;
        }
        let any: SocketAddr = if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        std::net::UdpSocket::bind(any)
            .and_then(|s| s.connect(peer).and_then(|()| s.local_addr()))
            .map_or(self.advertised, |a| a.ip())
    }
}

/// Binds the SIP socket (so a bad address fails start-up) and returns the
/// task that serves it until `cancel`.
///
/// # Errors
/// The socket cannot be bound.
pub async fn start(
    config: Config,
    agent: Agent,
    cancel: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let socket = UdpSocket::bind(config.sip.udp_listen)
        .await
        .with_context(|| format!("binding SIP on {}", config.sip.udp_listen))?;
    let tcp = tokio::net::TcpListener::bind(config.sip.tcp_listen)
        .await
        .with_context(|| format!("binding SIP over TCP on {}", config.sip.tcp_listen))?;
    let local = socket.local_addr()?;
    let (advertised, explicit) = match config.sip.public_address.parse::<IpAddr>() {
        Ok(ip) => (ip, true),
        Err(_) if !local.ip().is_unspecified() => (local.ip(), true),
        // Listening on every interface: per caller, the interface that reaches it.
        Err(_) => (IpAddr::V4(Ipv4Addr::LOCALHOST), false),
    };
    let shared = Arc::new(Shared {
        config,
        agent,
        socket: Arc::new(socket),
        advertised,
        explicit,
        sip_port: local.port(),
    });
    let (stream_tx, stream_rx) = mpsc::channel(256);
    tokio::spawn(accept_tcp(tcp, stream_tx, cancel.clone()));
    let (dialogs_tx, dialogs_rx) = mpsc::channel(16);
    if !shared.config.trunk.registrar.is_empty() {
        tokio::spawn(register_with_trunk(shared.clone(), dialogs_tx, cancel.clone()));
    }
    Ok((local, tokio::spawn(signalling(shared, stream_rx, dialogs_rx, cancel))))
}

/// Accepts SIP over TCP: each connection's messages, framed by
/// Content-Length, join the UDP ones; answers go back on the connection.
async fn accept_tcp(
    listener: tokio::net::TcpListener,
    incoming: mpsc::Sender<(Vec<u8>, Peer)>,
    cancel: CancellationToken,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    loop {
        let (stream, addr) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    continue;
                }
            },
        };
        let (mut reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        let (incoming, cancel) = (incoming.clone(), cancel.clone());
        tokio::spawn(async move {
            let peer = Peer::Tcp(addr, tx);
            let mut buf: Vec<u8> = Vec::with_capacity(4096);
            let mut chunk = vec![0u8; 8192];
            loop {
                let n = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = reader.read(&mut chunk) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    },
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match message::stream_message_len(&buf) {
                        Ok(Some(len)) => {
                            let msg: Vec<u8> = buf.drain(..len).collect();
                            if incoming.send((msg, peer.clone())).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        // Framing that cannot be recovered: close (RFC 4475 clerr, ncl).
                        Err(_) => return,
                    }
                }
            }
        });
    }
}

/// Keeps this server registered with the configured trunk.
async fn register_with_trunk(
    shared: Arc<Shared>,
    dialogs: mpsc::Sender<(String, mpsc::Sender<Message>)>,
    cancel: CancellationToken,
) {
    let t = &shared.config.trunk;
    // Validated at load: both are sip: URIs.
    let (Ok(registrar), Ok(aor)) = (message::Uri::parse(&t.registrar), message::Uri::parse(&t.aor)) else {
        return;
    };
    let Some(sip) = registrar.as_sip() else { return };
    let target = format!("{}:{}", sip.host.to_string().trim_matches(['[', ']']), sip.port.unwrap_or(5060));
    let addr = match tokio::net::lookup_host(&target).await.map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        other => {
            tracing::warn!(registrar = %t.registrar, ?other, "trunk registrar not found");
            return;
        }
    };
    let call_id = format!("reg-{:08x}@voxgate", rand_u32());
    let (tx, mut rx) = mpsc::channel(16);
    if dialogs.send((call_id.clone(), tx)).await.is_err() {
        return;
    }
    let via_host = host_port(shared.advertised_for(addr), shared.sip_port);
    let user = if t.username.is_empty() { "voxgate" } else { &t.username };
    let contact = format!("sip:{user}@{via_host}");
    let account = Account {
        registrar: registrar.clone(),
        aor,
        username: t.username.clone(),
        password: t.password.expose().to_owned(),
        expires: t.expires,
    };
    let mut reg = Registration::new(std::time::Instant::now(), account, &contact, &via_host, &call_id);
    loop {
        while let Some(o) = reg.poll_output() {
            match o {
                RegistrationOutput::Send(bytes) => {
                    let _ = shared.socket.try_send_to(&bytes, addr);
                }
                RegistrationOutput::Event(RegistrationEvent::Registered { expires }) => {
                    tracing::info!(registrar = %t.registrar, expires, "registered with the trunk");
                }
                RegistrationOutput::Event(RegistrationEvent::Failed { status }) => {
                    tracing::warn!(registrar = %t.registrar, status, "trunk registration failed; trying again in 30 s");
                }
            }
        }
        let next = reg.poll_timeout().map(Instant::from_std);
        tokio::select! {
            () = cancel.cancelled() => return,
            msg = rx.recv() => match msg {
                Some(m) => reg.handle_message(std::time::Instant::now(), &m),
                None => return,
            },
            () = sleep_until(next) => reg.handle_timeout(std::time::Instant::now()),
        }
    }
}

async fn signalling(
    shared: Arc<Shared>,
    mut stream_rx: mpsc::Receiver<(Vec<u8>, Peer)>,
    mut dialogs_rx: mpsc::Receiver<(String, mpsc::Sender<Message>)>,
    cancel: CancellationToken,
) {
    let routes: HashMap<String, String> =
        shared.config.sip.numbers.iter().map(|n| (n.clone(), shared.agent.name.clone())).collect();
    let mut responder = Responder::new(routes, shared.config.sip_policy());
    let mut calls: HashMap<String, mpsc::Sender<Message>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel::<String>(64);
    let mut buf = vec![0u8; message::MAX_MESSAGE_BYTES + 1];
    loop {
        let (bytes, peer): (Vec<u8>, Peer) = tokio::select! {
            () = cancel.cancelled() => return,
            Some(call_id) = done_rx.recv() => {
                calls.remove(&call_id);
                continue;
            }
            // Other dialogs of ours (the trunk registration) take their Call-ID's messages.
            Some((call_id, tx)) = dialogs_rx.recv() => {
                calls.insert(call_id, tx);
                continue;
            }
            Some(streamed) = stream_rx.recv() => streamed,
            r = shared.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => (buf[..n].to_vec(), Peer::Udp(from)),
                Err(e) => {
                    tracing::warn!(error = %e, "SIP receive failed");
                    continue;
                }
            },
        };
        let framing = peer.framing();
        if let Ok(msg) = message::parse(&bytes, framing) {
            let call_id = match &msg {
                Message::Request(r) => r.headers.get("call-id"),
                Message::Response(r) => r.headers.get("call-id"),
            };
            if let Some(tx) = call_id.and_then(|id| calls.get(id)) {
                let _ = tx.try_send(msg);
                continue;
            }
        }
        match responder.handle(std::time::Instant::now(), peer.addr(), &bytes, framing) {
            Action::Nothing => {}
            Action::Reply(response) => peer.send(&shared.socket, response.to_bytes()),
            Action::Invite { request, checked, agent } => {
                let call_id = checked.call_id.clone();
                tracing::info!(call_id = %call_id, from = %peer.addr(), agent = %agent, "incoming call");
                let (tx, rx) = mpsc::channel(32);
                calls.insert(call_id.clone(), tx);
                let (shared, done, cancel) = (shared.clone(), done_tx.clone(), cancel.child_token());
                tokio::spawn(async move {
                    let task = tokio::spawn(run_call(shared, *request, *checked, peer, rx, cancel));
                    if let Err(e) = task.await {
                        // A panicking call is that call hung up, never the server.
                        tracing::error!(call_id = %call_id, error = %e, "call task failed");
                    }
                    let _ = done.send(call_id).await;
                });
            }
        }
    }
}

/// Encoder and decoder for the negotiated codec.
struct Media {
    rate: SampleRate,
    playout: AudioPlayout,
    /// Caller's rate -> 16 kHz, and back.
    inbound: FrameResampler,
    outbound: FrameResampler,
    encoder: Encoder,
}

enum Encoder {
    G711(G711Law),
    Opus(Box<OpusEncoder>),
}

impl Media {
    fn new(n: &Negotiated, jitter: JitterConfig) -> anyhow::Result<Self> {
        let (rate, decoder, encoder): (SampleRate, Box<dyn AudioDecoder>, Encoder) = match n.codec {
            Codec::Pcmu => {
                (SampleRate::HZ_8000, Box::new(G711Decoder(G711Law::Ulaw)), Encoder::G711(G711Law::Ulaw))
            }
            Codec::Pcma => {
                (SampleRate::HZ_8000, Box::new(G711Decoder(G711Law::Alaw)), Encoder::G711(G711Law::Alaw))
            }
            Codec::Opus => (
                SampleRate::HZ_48000,
                Box::new(OpusDecoder::new(SampleRate::HZ_48000)?),
                Encoder::Opus(Box::new(OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_48000))?)),
            ),
        };
        Ok(Self {
            rate,
            playout: AudioPlayout::new(jitter, decoder),
            inbound: FrameResampler::new(rate, SampleRate::HZ_16000)?,
            outbound: FrameResampler::new(SampleRate::HZ_16000, rate)?,
            encoder,
        })
    }

    /// Encodes one 16 kHz frame into `out`; returns the payload length.
    fn encode(&mut self, frame: &Frame, pcm: &mut [i16], out: &mut [u8]) -> anyhow::Result<usize> {
        let n = self.outbound.process(frame, pcm)?;
        Ok(match &mut self.encoder {
            Encoder::G711(law) => law.encode(&pcm[..n], out)?,
            Encoder::Opus(enc) => enc.encode(&pcm[..n], out)?,
        })
    }
}

fn recording_path(config: &Config, call_id: &str) -> PathBuf {
    let safe: String = call_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .take(96)
        .collect();
    config.storage.recordings_dir.join(format!("{safe}.wav"))
}

/// Binds an RTP socket on a free even port of the configured range.
async fn bind_rtp(config: &Config, ip: IpAddr) -> anyhow::Result<UdpSocket> {
    let (min, max) = (config.rtp.port_min, config.rtp.port_max);
    let span = u32::from(max - min) / 2;
    let start = std::process::id().wrapping_mul(7919) ^ (Instant::now().elapsed().subsec_nanos());
    for i in 0..span.min(500) {
        let port = min + (((start.wrapping_add(i)) % span.max(1)) * 2) as u16;
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
            return Ok(s);
        }
    }
    anyhow::bail!("no free RTP port in {min}..{max}")
}

async fn run_call(
    shared: Arc<Shared>,
    invite: Request,
    checked: Checked,
    peer: Peer,
    mut signalling: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let call_id = checked.call_id.clone();
    let tag = format!("vg{:08x}", rand_u32());
    let advertised = shared.advertised_for(peer.addr());
    let contact = format!("sip:voxgate@{}", host_port(advertised, shared.sip_port));
    let mut call =
        InboundCall::new(invite.clone(), checked, &tag, &contact, &host_port(advertised, shared.sip_port));
    let send = |call: &mut InboundCall| {
        let mut events = Vec::new();
        while let Some(o) = call.poll_output() {
            match o {
                CallOutput::Send(bytes) => peer.send(&shared.socket, bytes),
                CallOutput::Event(e) => events.push(e),
            }
        }
        events
    };
    send(&mut call);
    match bridge(&shared, advertised, &mut call, &invite, &mut signalling, &cancel, &send).await {
        Ok(None) => tracing::info!(call_id = %call_id, "call ended before it was answered"),
        Ok(Some(log)) => {
            tracing::info!(call_id = %call_id, end = ?log.end, turns = log.latencies.len(), "call ended");
            let path = recording_path(&shared.config, &call_id).with_extension("json");
            if let Ok(json) = serde_json::to_vec_pretty(&log) {
                let _ = tokio::fs::write(path, json).await;
            }
        }
        Err(e) => {
            tracing::warn!(call_id = %call_id, error = %e, "call failed");
            call.hangup(std::time::Instant::now());
            send(&mut call);
        }
    }
}

fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(13) ^ std::process::id()
}

async fn bridge(
    shared: &Shared,
    advertised: IpAddr,
    call: &mut InboundCall,
    invite: &Request,
    signalling: &mut mpsc::Receiver<Message>,
    cancel: &CancellationToken,
    send: &impl Fn(&mut InboundCall) -> Vec<CallEvent>,
) -> anyhow::Result<Option<CallLog>> {
    let config = &shared.config;
    let rtp_socket = bind_rtp(
        config,
        if config.sip.udp_listen.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            advertised
        },
    )
    .await?;
    let rtp_port = rtp_socket.local_addr()?.port();
    // RTCP on the next port (bind_rtp picks even ones); without it, reports are skipped.
    let rtcp_socket =
        UdpSocket::bind(SocketAddr::new(rtp_socket.local_addr()?.ip(), rtp_port + 1)).await.ok();
    let codecs = [Codec::Pcmu, Codec::Pcma, Codec::Opus];
    // Usually the INVITE carries the offer; without one, ours goes in the
    // 200 and the caller's answer comes in the ACK (RFC 3261 §13.2.1).
    let (local_sdp, early) = if invite.body.is_empty() {
        (sdp::offer(advertised, rtp_port, u64::from(rand_u32())), None)
    } else {
        let answered = Sdp::parse(&String::from_utf8_lossy(&invite.body))
            .and_then(|offer| sdp::answer(&offer, &codecs, advertised, rtp_port));
        match answered {
            Ok((answer, n)) => (answer, Some(n)),
            Err(e) => {
                call.reject(std::time::Instant::now(), 488, "Not Acceptable Here");
                send(call);
                anyhow::bail!("{e}");
            }
        }
    };
    let jitter = JitterConfig {
        start_delay_ms: config.jitter.start_delay_ms,
        min_delay_ms: config.jitter.min_delay_ms,
        max_delay_ms: config.jitter.max_delay_ms,
        ..JitterConfig::default()
    };
    tokio::fs::create_dir_all(&config.storage.recordings_dir).await?;
    let recording = recording_path(config, call.invite().headers.get("call-id").unwrap_or("call"));
    if config.sip.ring_ms > 0 {
        call.ring();
        send(call);
        // The caller may cancel while it rings.
        let ring = tokio::time::sleep(Duration::from_millis(u64::from(config.sip.ring_ms)));
        tokio::pin!(ring);
        loop {
            tokio::select! {
                () = &mut ring => break,
                msg = signalling.recv() => match msg {
                    Some(m) => call.handle_message(std::time::Instant::now(), m),
                    None => anyhow::bail!("signalling closed while ringing"),
                },
            }
            let ended = send(call).into_iter().any(|e| matches!(e, CallEvent::Ended(_)));
            if ended {
                // Cancelled: the 487 still waits for its ACK.
                finish_signalling(call, signalling, send).await;
                return Ok(None);
            }
        }
    }
    call.answer(std::time::Instant::now(), &local_sdp.to_text());
    send(call);
    let mut negotiated = match early {
        Some(n) => n,
        None => answer_in_ack(call, signalling, send, &codecs).await?,
    };
    let mut media = Media::new(&negotiated, jitter)?;
    let vad = voxgate_pipeline::dsp::vad::build(&config.vad_config())?;
    let mut session = session::spawn(SessionParts {
        config: shared.agent.session.clone(),
        providers: shared.agent.providers.clone(),
        vad,
        recording: Some(recording),
    });

    let mut latched: Option<SocketAddr> = None;
    let mut last_rtp = Instant::now();
    let no_media = Duration::from_secs(u64::from(config.rtp.no_media_timeout_s));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let ssrc = rand_u32();
    let (mut seq, mut ts): (u16, u32) = (rand_u32() as u16, rand_u32());
    let mut marker = true;
    let mut last_dtmf: Option<u32> = None;
    let mut rtp_buf = vec![0u8; 2048];
    let mut pcm = vec![0i16; 960];
    let mut frame16 = [0i16; 320];
    let mut payload = vec![0u8; 1500];
    let mut out = vec![0u8; 1500];
    let mut hung_up = false;
    let samples_per_frame = media.rate.samples_per_frame() as u32;
    let mut rx_stats = ReceiverStats::default();
    let (mut sent_packets, mut sent_octets) = (0u32, 0u32);
    let mut reports = tokio::time::interval(Duration::from_secs(5));
    let mut rtcp_buf = vec![0u8; 1500];
    loop {
        let deadline = call.poll_timeout().map(Instant::from_std);
        tokio::select! {
            () = cancel.cancelled(), if !hung_up => {
                hung_up = true;
                call.hangup(std::time::Instant::now());
            }
            msg = signalling.recv() => match msg {
                Some(m) => call.handle_message(std::time::Instant::now(), m),
                None => break,
            },
            () = sleep_until(deadline) => call.handle_timeout(std::time::Instant::now()),
            r = rtp_socket.recv_from(&mut rtp_buf) => {
                let Ok((n, src)) = r else { continue };
                let bytes = &rtp_buf[..n];
                if rtp::is_rtcp(bytes) {
                    // RTCP multiplexed on the RTP port (RFC 5761).
                    read_rtcp(bytes, &mut rx_stats);
                    continue;
                }
                let Ok(p) = RtpPacket::parse(bytes) else { continue };
                // Strict latching: the first valid packet fixes the source; others are ignored (RTP Bleed).
                match latched {
                    None if p.payload_type == negotiated.payload_type || Some(p.payload_type) == negotiated.dtmf_payload_type => latched = Some(src),
                    Some(a) if a == src => {}
                    _ => continue,
                }
                last_rtp = Instant::now();
                if p.payload_type == negotiated.payload_type {
                    rx_stats.on_packet(p.ssrc, p.seq);
                }
                if Some(p.payload_type) == negotiated.dtmf_payload_type {
                    if let Ok(ev) = TelephoneEvent::decode(p.payload)
                        && ev.end
                        && last_dtmf != Some(p.timestamp)
                        && let Some(key) = ev.key()
                    {
                        last_dtmf = Some(p.timestamp);
                        let _ = session.control.try_send(Control::Dtmf(key));
                    }
                } else if p.payload_type == negotiated.payload_type {
                    let packet = JitterPacket { seq: p.seq, timestamp: p.timestamp, ssrc: p.ssrc, marker: p.marker, payload: p.payload };
                    media.playout.handle_packet(std::time::Instant::now(), packet);
                }
            }
            _ = tick.tick() => {
                let n = media.playout.frame_samples();
                if media.playout.poll_frame(std::time::Instant::now(), &mut pcm[..n]).is_ok()
                    && media.inbound.process(&pcm[..n], &mut frame16).is_ok()
                {
                    let _ = session.audio_in.try_send(frame16);
                }
                if !hung_up && last_rtp.elapsed() > no_media {
                    tracing::info!("no RTP for {} s: hanging up", no_media.as_secs());
                    hung_up = true;
                    call.hangup(std::time::Instant::now());
                    let _ = session.control.try_send(Control::Hangup);
                }
            }
            frame = session.audio_out.recv() => {
                let Some(frame) = frame else { continue };
                let Some(dest) = latched.or(negotiated.remote) else { continue };
                if let Ok(len) = media.encode(&frame, &mut pcm, &mut payload) {
                    let packet = RtpPacket { marker, payload_type: negotiated.payload_type, seq, timestamp: ts, ssrc, payload: &payload[..len] };
                    if let Ok(n) = packet.write(&mut out) {
                        let _ = rtp_socket.send_to(&out[..n], dest).await;
                        sent_packets = sent_packets.wrapping_add(1);
                        sent_octets = sent_octets.wrapping_add(len as u32);
                    }
                    marker = false;
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(samples_per_frame);
                }
            }
            r = recv_opt(rtcp_socket.as_ref(), &mut rtcp_buf) => {
                if let Some(n) = r {
                    read_rtcp(&rtcp_buf[..n], &mut rx_stats);
                }
            }
            _ = reports.tick() => {
                let dest = latched.or(negotiated.remote).map(|a| SocketAddr::new(a.ip(), a.port() + 1));
                if let (Some(socket), Some(dest)) = (rtcp_socket.as_ref(), dest) {
                    let jitter = (media.playout.jitter().stats().jitter_ms * f64::from(media.rate.hz()) / 1000.0) as u32;
                    let report = Report {
                        ssrc,
                        sender: (sent_packets > 0).then(|| SenderInfo { ntp: ntp_now(), rtp_timestamp: ts, packets: sent_packets, octets: sent_octets }),
                        blocks: rx_stats.report(std::time::Instant::now(), jitter).into_iter().collect(),
                    };
                    if let Ok(n) = report.write(hung_up, &mut out) {
                        let _ = socket.send_to(&out[..n], dest).await;
                    }
                }
            }
            event = session.events.recv() => match event {
                Some(SessionEvent::Ended(_)) | None => {
                    if !hung_up {
                        hung_up = true;
                        call.hangup(std::time::Instant::now());
                    }
                }
                // Our pacing keeps nothing buffered; the next talkspurt starts with a marker.
                Some(SessionEvent::Clear) => marker = true,
                Some(SessionEvent::Transfer { target }) => {
                    tracing::info!(%target, "blind transfer (REFER)");
                    // The session ends next; the REFER, not a BYE, ends the call.
                    hung_up = true;
                    call.transfer(std::time::Instant::now(), &target);
                }
                Some(SessionEvent::Transcript { .. }) => {}
            },
        }
        for event in send(call) {
            match event {
                CallEvent::Ended(cause) => {
                    tracing::info!(?cause, "signalling ended");
                    let _ = session.control.try_send(Control::Hangup);
                    if cause != EndCause::LocalHangup {
                        hung_up = true;
                    }
                }
                CallEvent::Dtmf(c) => {
                    if let Some(key) = voxgate_codecs::dtmf::DtmfKey::from_char(c) {
                        let _ = session.control.try_send(Control::Dtmf(key));
                    }
                }
                CallEvent::ReInvite { offer } => {
                    let answered = offer
                        .as_deref()
                        .and_then(|o| Sdp::parse(o).ok())
                        .and_then(|o| sdp::answer(&o, &codecs, advertised, rtp_port).ok());
                    if let Some((answer, n)) = answered {
                        if n.codec != negotiated.codec
                            && let Ok(m) = Media::new(&n, jitter)
                        {
                            media = m;
                        }
                        negotiated = n;
                        call.answer_reinvite(std::time::Instant::now(), &answer.to_text());
                    } else {
                        call.answer_reinvite(
                            std::time::Instant::now(),
                            &sdp::offer(advertised, rtp_port, 1).to_text(),
                        );
                    }
                    send(call);
                }
                CallEvent::Confirmed { .. } => {}
            }
        }
        if call.is_ended() && session.task.is_finished() {
            break;
        }
        if call.is_ended() && hung_up {
            let _ = session.control.try_send(Control::Hangup);
        }
    }
    Ok(Some(session.task.await?))
}

/// Waits for the ACK that carries the caller's answer to our offer.
async fn answer_in_ack(
    call: &mut InboundCall,
    signalling: &mut mpsc::Receiver<Message>,
    send: &impl Fn(&mut InboundCall) -> Vec<CallEvent>,
    codecs: &[Codec],
) -> anyhow::Result<Negotiated> {
    loop {
        let next = call.poll_timeout().map(Instant::from_std);
        tokio::select! {
            msg = signalling.recv() => match msg {
                Some(m) => call.handle_message(std::time::Instant::now(), m),
                None => anyhow::bail!("signalling closed before the ACK"),
            },
            () = sleep_until(next) => call.handle_timeout(std::time::Instant::now()),
        }
        for event in send(call) {
            match event {
                CallEvent::Confirmed { sdp } => {
                    let answer = sdp.ok_or_else(|| anyhow::anyhow!("the ACK carried no SDP answer"))?;
                    return Ok(sdp::accept_answer(&Sdp::parse(&answer)?, codecs)?);
                }
                CallEvent::Ended(cause) => anyhow::bail!("ended before the ACK: {cause:?}"),
                _ => {}
            }
        }
    }
}

/// Runs the signalling of a call that ended before it was answered (the
/// final response waits for its ACK), then closes the session.
async fn finish_signalling(
    call: &mut InboundCall,
    signalling: &mut mpsc::Receiver<Message>,
    send: &impl Fn(&mut InboundCall) -> Vec<CallEvent>,
) {
    let deadline = Instant::now() + voxgate_sip_bridge::call::TIMEOUT;
    while call.poll_timeout().is_some() && Instant::now() < deadline {
        let next = call.poll_timeout().map(Instant::from_std);
        tokio::select! {
            msg = signalling.recv() => match msg {
                Some(m) => call.handle_message(std::time::Instant::now(), m),
                None => break,
            },
            () = sleep_until(next) => call.handle_timeout(std::time::Instant::now()),
        }
        send(call);
    }
}

/// Reads a peer's RTCP: its sender reports time our round-trip
/// measurement; its reception reports say how our audio arrives.
fn read_rtcp(bytes: &[u8], rx_stats: &mut ReceiverStats) {
    let Ok(received) = rtcp::parse(bytes) else { return };
    for report in received.reports {
        if let Some(sender) = report.sender {
            rx_stats.on_sender_report(sender.ntp, std::time::Instant::now());
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

/// Receives from `socket`, or waits forever without one.
async fn recv_opt(socket: Option<&UdpSocket>, buf: &mut [u8]) -> Option<usize> {
    match socket {
        Some(s) => s.recv_from(buf).await.ok().map(|(n, _)| n),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
