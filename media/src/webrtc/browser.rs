//! A browser's call: str0m's engine, the call's sockets and the call core,
//! driven by one loop. The engine's rule, that every change to it is
//! followed by draining its output to the end, is kept in [`Browser::drain`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use str0m::channel::ChannelId;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voxgate_pipeline::call::{Action, Arrival, CallClock, CallCore, Output as CoreOutput, Wake, now};
use voxgate_pipeline::dsp::jitter::RtpPacket as JitterPacket;
use voxgate_pipeline::session::{TransferFailure, TransferOutcome};

use super::pending::PendingPlace;
use crate::calls::{CallContext, Carrier};
use crate::error::StartError;
use crate::metrics::{ChannelLabel, metrics};
use voxgate_calls::agent::CallAgent;
use voxgate_domain::Channel;

/// How long a browser has to connect after the answer: the most an
/// answered offer holds its port without a call.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

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
                CoreOutput::Action(Action::WarmTransfer { target, .. }) => {
                    tracing::warn!(%target, "a browser call cannot call a human; the caller stays with the agent");
                    let failed = TransferOutcome::Failed(TransferFailure::Failed);
                    l.core.handle_transfer(now(), failed);
                }
                // Frames go to the engine as they fall due: nothing buffered to clear.
                CoreOutput::Action(_) => {}
            }
        }
        over
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
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
