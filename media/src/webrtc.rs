//! Browser calls over WebRTC: `POST /v1/webrtc/offer` with an SDP offer
//! (WHIP-style: `application/sdp` in, the answer out with a `Location`
//! to `DELETE` to hang up). Opus at 48 kHz both ways, DTLS-SRTP always;
//! our host candidates are `webrtc.addresses`, a socket on each (and
//! `public_address` behind a 1:1 NAT).
//!
//! The engine is [str0m](https://docs.rs/str0m), a sans-IO WebRTC stack:
//! this module owns the socket and the clock and feeds it, as the SIP
//! media loop does for RTP. The browser's Opus frames go through the same
//! jitter buffer and decoder ([`Media`]) into the same pipeline session,
//! called from the call's 20 ms tick as SIP calls it: the caller's frame
//! in, the agent's out, one wake-up for both.

use crate::agent::CallAgent;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::metrics::{ChannelLabel, metrics};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voxgate_pipeline::call::{Action, Arrival, CallClock, CallCore, Output as CoreOutput, Wake, now};
use voxgate_pipeline::dsp::jitter::RtpPacket as JitterPacket;

use crate::calls::{self, CallContext, Carrier};
use crate::error::{Refusal, StartError};
use crate::stream::KeyQuery;
use voxgate_domain::{CallId, Channel};

/// How long a browser has to connect after the answer: the most an
/// answered offer holds its port without a call.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// The largest SDP offer taken.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Calls in progress, by id, so `DELETE` can hang them up; and the
/// answered ones not yet connected.
#[derive(Debug, Default, Clone)]
pub struct Calls(Arc<Mutex<HashMap<String, CancellationToken>>>, Arc<Pending>);

/// Offers answered whose browser has not connected yet, each holding a
/// port: per client network (/24, /56) and in all, so that nobody can hold
/// every media port with offers they never follow.
#[derive(Debug, Default)]
pub struct Pending(Mutex<(u32, HashMap<ipnet::IpNet, u32>)>);

/// One pending offer's place; given back when the browser connects or the call ends.
#[derive(Debug)]
struct PendingPlace {
    pending: Arc<Pending>,
    net: ipnet::IpNet,
}

impl Pending {
    /// A place for an offer from `client`, unless its network has
    /// `per_network` pending or the server `total`.
    fn take(
        self: &Arc<Self>,
        client: std::net::IpAddr,
        per_network: u32,
        total: u32,
    ) -> Option<PendingPlace> {
        let net = voxgate_sip_bridge::limiter::client_network(client);
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (all, by_net) = &mut *counts;
        let mine = by_net.get(&net).copied().unwrap_or(0);
        if *all >= total || mine >= per_network {
            return None;
        }
        *all += 1;
        by_net.insert(net, mine + 1);
        Some(PendingPlace { pending: self.clone(), net })
    }
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        let mut counts = self.pending.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (all, by_net) = &mut *counts;
        *all = all.saturating_sub(1);
        if let Some(n) = by_net.get_mut(&self.net) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_net.remove(&self.net);
            }
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `POST /v1/webrtc/offer`: an SDP offer in, the answer out.
pub async fn offer(
    State(ctx): State<Arc<CallContext>>,
    State(running): State<Calls>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<SocketAddr>,
    Query(query): Query<KeyQuery>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let access = match ctx.access(&query.key, &query.token) {
        Ok(a) => a,
        Err(refused) => return refused.into_response(),
    };
    let received = std::time::Instant::now();
    if !ctx.config.webrtc.enabled {
        return error(StatusCode::SERVICE_UNAVAILABLE, "WebRTC is off (webrtc.enabled = false)");
    }
    let agent = match ctx.agents.get(&query.agent).await {
        // An agent this visitor may not reach is as unknown as a missing one.
        Ok(agent) if ctx.may_use(&access, &agent) => agent,
        Ok(_) => return Refusal::NotFound("agent").into_response(),
        Err(e) => return Refusal::from(e).into_response(),
    };
    let sdp_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !sdp_type.starts_with("application/sdp") {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the offer as application/sdp");
    }
    if body.len() > MAX_OFFER_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the offer is too large");
    }
    let Ok(offer) = SdpOffer::from_sdp_string(&body) else {
        return error(StatusCode::BAD_REQUEST, "not an SDP offer");
    };
    // Within the limits, before a port is taken; held until the call's task ends.
    let seat = match ctx.admit(Channel::WebRtc, &agent) {
        Ok(seat) => seat,
        Err(full) => {
            let retry = ctx.admission.retry_after_s().to_string();
            let mut refused =
                error(StatusCode::SERVICE_UNAVAILABLE, &format!("busy: {full}; try again later"));
            if let Ok(v) = header::HeaderValue::from_str(&retry) {
                refused.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return refused;
        }
    };
    let w = &ctx.config.webrtc;
    let Some(pending) = running.1.take(client.ip(), w.max_pending_per_network, w.max_pending) else {
        tracing::warn!(client = %client.ip(), "WebRTC offer refused: too many unconnected sessions");
        let mut refused =
            error(StatusCode::TOO_MANY_REQUESTS, "too many calls waiting to connect; try again shortly");
        refused.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
        return refused;
    };
    install_crypto();
    // A socket and a host candidate per interface.
    let sockets = match bind_sockets(&ctx.config).await {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!(error = %e, "no port for a WebRTC call");
            return error(StatusCode::SERVICE_UNAVAILABLE, "no media port free");
        }
    };
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(std::time::Instant::now());
    for (local, _) in &sockets {
        if let Ok(c) = Candidate::host(*local, "udp") {
            rtc.add_local_candidate(c);
        }
    }
    // Behind a 1:1 NAT: the public address, forwarded to the first interface's port.
    if let (Some(ip), Some((first, _))) = (w.public_address, sockets.first())
        && let Ok(c) = Candidate::host(SocketAddr::new(ip, first.port()), "udp")
    {
        rtc.add_local_candidate(c);
    }
    let answer = match rtc.sdp_api().accept_offer(offer) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the offer cannot be answered: {e}")),
    };
    let id = CallId::random().into_string();
    let cancel = CancellationToken::new();
    if let Ok(mut calls) = running.0.lock() {
        calls.insert(id.clone(), cancel.clone());
    }
    tracing::info!(call_id = %id, ports = ?sockets.iter().map(|s| s.0).collect::<Vec<_>>(), "WebRTC call answered");
    let (registry, call_id) = (running.clone(), id.clone());
    tokio::spawn(async move {
        let call = tokio::spawn(run(rtc, sockets, ctx, agent, call_id.clone(), cancel, received, pending));
        let outcome = call.await;
        drop(seat);
        if let Err(e) = outcome {
            tracing::error!(call_id = %call_id, error = %e, "WebRTC call task failed");
        }
        if let Ok(mut calls) = registry.0.lock() {
            calls.remove(&call_id);
        }
    });
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/v1/webrtc/{id}")),
        ],
        answer.to_sdp_string(),
    )
        .into_response()
}

/// `DELETE /v1/webrtc/{id}`: hang up.
pub async fn hang_up(
    State(ctx): State<Arc<CallContext>>,
    State(running): State<Calls>,
    Query(query): Query<KeyQuery>,
    Path(id): Path<String>,
) -> Response {
    // The call's id (unguessable, handed to its caller) is what hangs it up;
    // with a media key set, the key or a media token must come too.
    if let Err(refused) = ctx.access(&query.key, &query.token) {
        return refused.into_response();
    }
    let token = running.0.lock().ok().and_then(|c| c.get(&id).cloned());
    match token {
        Some(t) => {
            t.cancel();
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such call"),
    }
}

/// A media socket on each of `webrtc.addresses`, with its local address.
async fn bind_sockets(
    config: &crate::config::MediaConfig,
) -> Result<Vec<(SocketAddr, UdpSocket)>, StartError> {
    let mut sockets = Vec::with_capacity(config.webrtc.addresses.len());
    for &ip in &config.webrtc.addresses {
        let socket = calls::bind_media_port(config, ip).await?;
        sockets.push((socket.local_addr()?, socket));
    }
    Ok(sockets)
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// The call, once the browser's track is there and DTLS is up (so the
/// greeting's first words are not sent into the void).
struct Live {
    core: CallCore,
    clock: CallClock,
    mid: Mid,
    pt: Pt,
}

/// The browser's side: str0m's engine, our sockets, and what the engine told us.
struct Browser {
    rtc: Rtc,
    sockets: Vec<(SocketAddr, UdpSocket)>,
    id: String,
    /// When the offer came, for the call-setup metric.
    received: std::time::Instant,
    /// The offer's place among those not yet connected, until connected.
    pending: Option<PendingPlace>,
    mid: Option<Mid>,
    connected: bool,
    /// A data channel from the browser gets the live transcript.
    transcripts: Option<ChannelId>,
}

impl Browser {
    /// str0m's rule: after every change to the engine, drain its output to
    /// the end. Sends what it has to send, feeds the browser's audio to the
    /// core, and returns when to wake the engine next.
    fn drain(&mut self, mut live: Option<&mut Live>) -> std::time::Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    // From the interface of the candidate pair in use.
                    let socket = self.sockets.iter().find(|(l, _)| *l == t.source).or(self.sockets.first());
                    if let Some((_, socket)) = socket {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                }
                Ok(Output::Timeout(at)) => return at,
                Ok(Output::Event(event)) => self.handle_event(event, live.as_deref_mut()),
                Err(e) => {
                    tracing::warn!(call_id = %self.id, error = %e, "WebRTC failed");
                    self.disconnect(live.as_deref_mut());
                    return std::time::Instant::now() + Duration::from_millis(20);
                }
            }
        }
    }

    fn handle_event(&mut self, event: Event, live: Option<&mut Live>) {
        match event {
            Event::Connected => {
                tracing::info!(call_id = %self.id, "WebRTC connected");
                metrics()
                    .call_setup
                    .get_or_create(&ChannelLabel::from(Channel::WebRtc))
                    .observe(self.received.elapsed().as_secs_f64());
                self.connected = true;
                // Connected: no longer pending.
                drop(self.pending.take());
            }
            Event::MediaAdded(added) => self.mid = self.mid.or(Some(added.mid)),
            Event::ChannelOpen(channel, label) => {
                tracing::debug!(call_id = %self.id, %label, "data channel open");
                self.transcripts = Some(channel);
            }
            Event::MediaData(data) => {
                if let Some(l) = live {
                    let packet = JitterPacket {
                        seq: data.seq_range.start().as_u16(),
                        timestamp: data.time.numer() as u32,
                        ssrc: 0,
                        marker: false,
                        payload: &data.data,
                    };
                    l.core.handle_packet(now(), packet);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::info!(call_id = %self.id, "WebRTC disconnected");
                self.disconnect(live);
            }
            _ => {}
        }
    }

    /// Ends the connection (and the call with it).
    fn disconnect(&mut self, live: Option<&mut Live>) {
        if let Some(l) = live {
            l.core.hang_up(now());
        }
        self.rtc.disconnect();
    }

    /// Carries out what the core asks: the agent's audio to the track,
    /// transcripts to the data channel. True when the call is over.
    fn forward(&mut self, l: &mut Live) -> bool {
        let mut over = false;
        while let Some(output) = l.core.poll_output() {
            match output {
                CoreOutput::Media(frame) => {
                    // Bring the engine's clock to now, so the frame is due at
                    // once (str0m holds at most a few frames not yet due).
                    let _ = self.rtc.handle_input(Input::Timeout(std::time::Instant::now()));
                    if let Some(writer) = self.rtc.writer(l.mid) {
                        let time = MediaTime::new(frame.timestamp, Frequency::FORTY_EIGHT_KHZ);
                        let _ = writer.write(l.pt, std::time::Instant::now(), time, frame.payload.to_vec());
                    }
                }
                CoreOutput::Action(Action::Transcript { speaker, text, is_final }) => {
                    if let Some(mut channel) = self.transcripts.and_then(|c| self.rtc.channel(c)) {
                        let line = serde_json::json!({"type": "transcript", "speaker": speaker.as_str(), "text": text, "is_final": is_final});
                        let _ = channel.write(false, line.to_string().as_bytes());
                    }
                }
                CoreOutput::Action(Action::HangUp) => over = true,
                CoreOutput::Action(Action::Transfer { target }) => {
                    tracing::warn!(%target, "a browser call cannot be transferred; the call ends");
                    over = true;
                }
                CoreOutput::Action(Action::Dtmf { .. }) => tracing::warn!("a browser call cannot send keys"),
                // Frames go to the engine as they fall due: nothing buffered to clear.
                CoreOutput::Action(_) => {}
            }
        }
        over
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    rtc: Rtc,
    sockets: Vec<(SocketAddr, UdpSocket)>,
    ctx: Arc<CallContext>,
    agent: CallAgent,
    id: String,
    cancel: CancellationToken,
    received: std::time::Instant,
    pending: PendingPlace,
) {
    let connect_by = Instant::now() + CONNECT_WITHIN;
    let mut browser = Browser {
        rtc,
        sockets,
        id: id.clone(),
        received,
        pending: Some(pending),
        mid: None,
        connected: false,
        transcripts: None,
    };
    let mut live: Option<Live> = None;
    let mut buf = vec![0u8; 2000];
    let mut ended = false;
    loop {
        let next = browser.drain(live.as_mut());
        if let (None, Some(mid), true) = (&live, browser.mid, browser.connected) {
            match start(&mut browser.rtc, &ctx, &agent, &id, mid) {
                Ok(l) => {
                    live = Some(l);
                    ctx.started(&CallContext::inbound(id.clone().into(), Channel::WebRtc, &agent)).await;
                }
                Err(e) => {
                    tracing::warn!(call_id = %id, error = %e, "WebRTC call cannot start");
                    browser.connected = false;
                    browser.rtc.disconnect();
                }
            }
        }
        if !browser.rtc.is_alive() {
            // Hung up, or the browser is gone: the call ends below.
            break;
        }
        if live.is_none() && Instant::now() > connect_by {
            tracing::info!(call_id = %id, "the browser never connected");
            browser.rtc.disconnect();
            break;
        }
        tokio::select! {
            () = cancel.cancelled(), if !ended => {
                ended = true;
                browser.disconnect(live.as_mut());
            }
            r = recv_any(&browser.sockets, &mut buf) => {
                let Ok((n, source, local)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(std::time::Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                if browser.rtc.accepts(&input) {
                    let _ = browser.rtc.handle_input(input);
                }
            }
            () = tokio::time::sleep_until(Instant::from_std(next)) => {
                let _ = browser.rtc.handle_input(Input::Timeout(std::time::Instant::now()));
            }
            wake = wait(live.as_mut()) => if let (Wake::Tick(now), Some(l)) = (wake, live.as_mut()) {
                l.core.handle_tick(now);
            },
        }
        if let Some(l) = live.as_mut()
            && browser.forward(l)
            && !ended
        {
            ended = true;
            browser.rtc.disconnect();
        }
    }
    if let Some(l) = live {
        let log = l.core.finish(now());
        ctx.ended(&CallContext::inbound(id.into(), Channel::WebRtc, &agent), &log).await;
    }
}

/// The browser's audio track is there: start the call.
fn start(
    rtc: &mut Rtc,
    ctx: &CallContext,
    agent: &CallAgent,
    id: &str,
    mid: Mid,
) -> Result<Live, StartError> {
    let pt = rtc
        .writer(mid)
        .and_then(|w| {
            w.payload_params().find(|p| p.spec().codec == str0m::format::Codec::Opus).map(|p| p.pt())
        })
        .ok_or_else(|| StartError::Negotiation("no Opus in the offer".into()))?;
    let carrier = Carrier {
        codec: voxgate_codecs::Codec::Opus,
        arrival: Arrival::Packets(ctx.config.jitter()),
        telephone_events: false,
        // ICE tells when the browser is gone.
        no_media: None,
    };
    Ok(Live { core: ctx.start_core(id, agent, carrier)?, clock: CallClock::new(), mid, pt })
}

/// The call's next wake-up (see [`CallClock::wait`]), or never before it starts.
async fn wait(live: Option<&mut Live>) -> Wake {
    match live {
        Some(l) => l.clock.wait(&mut l.core).await,
        None => std::future::pending().await,
    }
}

/// The next datagram on any of `sockets`: its length, source, and the
/// local address it came to.
async fn recv_any(
    sockets: &[(SocketAddr, UdpSocket)],
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for (local, socket) in sockets {
            let mut read = tokio::io::ReadBuf::new(buf);
            if let std::task::Poll::Ready(r) = socket.poll_recv_from(cx, &mut read) {
                return std::task::Poll::Ready(r.map(|source| (read.filled().len(), source, *local)));
            }
        }
        std::task::Poll::Pending
    })
    .await
}
