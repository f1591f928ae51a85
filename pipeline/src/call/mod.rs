//! The call core: one call's media and conversation, whatever carries it.
//! Sans-IO, time passed in. Every transport (SIP/RTP, WebRTC, websocket
//! streams, a sound card) owns its sockets and clock and calls this, and
//! nothing else, on each 20 ms tick:
//!
//! ```text
//!  caller's packets ──► jitter buffer + decoder ─┐
//!  (or in-order audio ──► queue ────────────────┤
//!                                                └─► resample to 16 kHz ─► session ─┐
//!  agent's encoded frame, timestamp, marker ◄── encode ◄── resample to the codec's ◄┘
//!  transport actions (clear, transfer, keys, hang up, transcripts) ◄── session events
//! ```
//!
//! The transport's loop, in outline ([`CallClock`] does the waiting):
//!
//! - on a tick: feed what arrived ([`CallCore::handle_packet`],
//!   [`CallCore::handle_audio`]), then [`CallCore::handle_tick`];
//! - meanwhile: [`CallCore::handle_timeout`] at [`CallCore::poll_timeout`],
//!   and the providers' [`CallCore::next_input`] into [`CallCore::handle_input`];
//! - after each: drain [`CallCore::poll_output`], sending each [`MediaFrame`]
//!   at once and carrying out each [`Action`].
//!
//! A warm transfer ([`Action::WarmTransfer`]) calls a human on a second
//! [`Leg`]; once [`CallCore::handle_transfer`] joins them, the core carries
//! the caller's side of the bridge: each tick's [`CallCore::caller_frame`]
//! goes to the human, and what the human said comes back through
//! [`CallCore::send_bridged`].

mod clock;
mod ingress;
mod leg;
mod outbound;
mod ticker;

use std::time::{Duration, Instant};

pub use clock::Talkspurts;
pub use leg::Leg;
pub use ticker::{CallClock, Wake, first_tick, now};
use voxgate_codecs::dtmf::EventPacket;
use voxgate_codecs::{Codec, CodecError};

use crate::dsp::jitter::{JitterConfig, RtpPacket};
use crate::dsp::vad::FRAME_SAMPLES;
use crate::session::{
    Announcement, CallLog, Control, Frame, Session, SessionEvent, SessionInput, SessionParts, Speaker,
    TransferOutcome,
};
use ingress::Ingress;
use outbound::Outbound;

/// Why a call core cannot start (or change codec).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// An in-order stream needs a codec of whole samples (G.711, PCM).
    #[error("{0:?} cannot arrive as an in-order stream")]
    NotInOrder(Codec),
}

/// How the caller's audio arrives.
#[derive(Debug, Clone)]
pub enum Arrival {
    /// RTP packets, through a jitter buffer (SIP, WebRTC).
    Packets(JitterConfig),
    /// An ordered stream of audio, queued and taken a frame a tick
    /// (websocket streams, a sound card).
    InOrder,
}

/// What a call core is made of.
#[derive(Debug)]
pub struct CallParts {
    /// The conversation.
    pub session: SessionParts,
    /// The audio format both ways.
    pub codec: Codec,
    pub arrival: Arrival,
    /// Whether the agent's keys go in the media as RFC 4733 telephone-events
    /// ([`MediaKind::TelephoneEvent`]); otherwise they are an [`Action::Dtmf`].
    pub telephone_events: bool,
    /// Hang up when no caller audio has come for this long.
    pub no_media: Option<Duration>,
    /// The first media timestamp of the agent's audio (random, RFC 3550).
    pub initial_timestamp: u32,
}

impl CallParts {
    /// A call whose audio is 16 kHz 16-bit PCM both ways, arriving in order,
    /// with no keys in the media and no silence limit: a local sound card,
    /// a test, a benchmark.
    #[must_use]
    pub fn pcm16(session: SessionParts) -> Self {
        Self {
            session,
            codec: Codec::PcmLe(voxgate_codecs::SampleRate::HZ_16000),
            arrival: Arrival::InOrder,
            telephone_events: false,
            no_media: None,
            initial_timestamp: 0,
        }
    }
}

/// What a frame out carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// The agent's voice, in the call's codec.
    Audio,
    /// A key the agent presses (RFC 4733 payload).
    TelephoneEvent,
}

/// A frame to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFrame<'a> {
    pub kind: MediaKind,
    pub payload: &'a [u8],
    /// On the codec's clock; RTP takes the low 32 bits.
    pub timestamp: u64,
    /// The first frame of a talkspurt (or of a key).
    pub marker: bool,
}

/// What the transport does for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Barge-in: drop any agent audio still buffered (a websocket `clear`).
    Clear,
    /// A live transcript line (the caller's as recognised, the agent's as
    /// each sentence starts).
    Transcript { speaker: Speaker, text: String, is_final: bool },
    /// Hand the caller to `target` (SIP REFER); the call is over.
    Transfer { target: String },
    /// Warm transfer: the caller is on hold (the core sends the hold tune).
    /// Call `target`, play it `announcement`, then report how it went with
    /// [`CallCore::handle_transfer`].
    WarmTransfer { target: String, announcement: Announcement },
    /// Press these keys, by the transport's own means (it takes no
    /// telephone-events in the media).
    Dtmf { digits: String },
    /// Who answered a call we placed (answering-machine detection), for
    /// the call's status.
    AnsweringMachine(crate::dsp::amd::Detection),
    /// The call is over: hang up. Once, and not when the transport ended it.
    HangUp,
}

/// Something to hand the transport.
#[derive(Debug)]
pub enum Output<'a> {
    Media(MediaFrame<'a>),
    Action(Action),
}

/// See the module documentation.
pub struct CallCore {
    session: Session,
    arrival: Arrival,
    ingress: Ingress,
    outbound: Outbound,
    /// The time of the latest input: when frames due now are sent.
    now: Instant,
    no_media: Option<Duration>,
    last_media: Instant,
    /// The call ended by the transport's doing (it hung up, or we
    /// transferred): no [`Action::HangUp`].
    transport_ended: bool,
    hung_up: bool,
    /// A key packet of this tick, not yet handed out.
    key: Option<(EventPacket, u64)>,
    /// Joined to a human (a warm transfer): the session is over and the
    /// core carries audio both ways.
    bridged: bool,
    /// The caller's frame of this tick, while bridged.
    caller: Frame,
    /// The human's frame to send, while bridged.
    human: Option<Frame>,
}

impl std::fmt::Debug for CallCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCore")
            .field("codec", &self.outbound.codec())
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl CallCore {
    /// Starts a call at `now`: its session begins (the greeting is on its way).
    ///
    /// # Errors
    /// The codec cannot be set up this way.
    pub fn start(now: Instant, parts: CallParts) -> Result<Self, CallError> {
        let ingress = Ingress::new(parts.codec, parts.arrival.clone())?;
        let outbound = Outbound::new(parts.codec, parts.telephone_events, parts.initial_timestamp)?;
        Ok(Self {
            session: Session::start(now, parts.session),
            arrival: parts.arrival,
            ingress,
            outbound,
            now,
            no_media: parts.no_media,
            last_media: now,
            transport_ended: false,
            hung_up: false,
            key: None,
            bridged: false,
            caller: [0; FRAME_SAMPLES],
            human: None,
        })
    }

    /// The caller's RTP packet (audio in the call's codec), arrived at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: RtpPacket<'_>) {
        self.last_media = now;
        self.ingress.handle_packet(now, packet);
    }

    /// The caller's audio in the call's codec, in order (a websocket
    /// stream). False when some of it does not decode (the rest is kept).
    pub fn handle_audio(&mut self, now: Instant, bytes: &[u8]) -> bool {
        self.last_media = now;
        self.ingress.handle_bytes(bytes)
    }

    /// The caller's samples at the codec's rate, in order (a sound card).
    pub fn handle_samples(&mut self, now: Instant, samples: &[i16]) {
        self.last_media = now;
        self.ingress.handle_samples(samples);
    }

    /// Urgent input: a key the caller pressed, or the transport's hang-up.
    pub fn handle_control(&mut self, now: Instant, control: Control) {
        self.now = now;
        match control {
            Control::Hangup if !self.session.is_ended() => self.transport_ended = true,
            Control::Dtmf(_) => self.last_media = now,
            Control::Hangup | Control::NoMedia => {}
        }
        self.session.handle_control(now, control);
    }

    /// The transport is gone (the caller hung up, the socket closed).
    pub fn hang_up(&mut self, now: Instant) {
        self.handle_control(now, Control::Hangup);
    }

    /// One 20 ms tick: the caller's frame goes to the session; the agent's
    /// frame it answers with is then due ([`CallCore::poll_output`]).
    pub fn handle_tick(&mut self, now: Instant) {
        self.now = now;
        if self.bridged {
            self.ingress.poll_frame(now, &mut self.caller);
            return;
        }
        let mut frame: Frame = [0; FRAME_SAMPLES];
        self.ingress.poll_frame(now, &mut frame);
        self.session.handle_caller_frame(now, &frame);
        if let Some(limit) = self.no_media
            && !self.session.is_ended()
            && now.saturating_duration_since(self.last_media) > limit
        {
            tracing::info!("no audio from the caller for {} s: hanging up", limit.as_secs());
            self.session.handle_control(now, Control::NoMedia);
        }
        self.key = self.outbound.key_packet(now);
    }

    /// How the call to the human of an [`Action::WarmTransfer`] went. True
    /// when the caller is now joined to the human: from the next tick on,
    /// the transport passes [`CallCore::caller_frame`] to the human and the
    /// human's audio to [`CallCore::send_bridged`], until either hangs up.
    pub fn handle_transfer(&mut self, now: Instant, outcome: TransferOutcome) -> bool {
        self.now = now;
        let connected = self.session.handle_transfer(now, outcome);
        if connected {
            // The transfer, not a hang-up, ended the conversation.
            self.transport_ended = true;
            self.bridged = true;
            self.outbound.mark();
        }
        connected
    }

    /// True once the caller is joined to a human.
    #[must_use]
    pub fn is_bridged(&self) -> bool {
        self.bridged
    }

    /// The caller's audio of the last tick, while bridged (16 kHz).
    #[must_use]
    pub fn caller_frame(&self) -> &Frame {
        &self.caller
    }

    /// The human's audio for the caller, while bridged: out at the next
    /// [`CallCore::poll_output`].
    pub fn send_bridged(&mut self, now: Instant, frame: &Frame) {
        if self.bridged {
            self.now = now;
            self.human = Some(*frame);
        }
    }

    /// When [`CallCore::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.session.handle_timeout(now);
    }

    /// Waits for what the providers send next. Cancel-safe.
    pub async fn next_input(&mut self) -> SessionInput {
        self.session.next_input().await
    }

    pub fn handle_input(&mut self, now: Instant, input: SessionInput) {
        self.now = now;
        self.session.handle_input(now, input);
    }

    /// What is due now, in order: a key's packet, the agent's frame, then
    /// the session's events as actions, then the hang-up. Call until `None`
    /// after every input.
    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        if let Some((event, ts)) = self.key.take() {
            return Some(Output::Media(self.outbound.key_frame(event, ts)));
        }
        if let Some(frame) = self.human.take()
            && let Some(e) = self.outbound.encode(self.now, &frame)
        {
            return Some(Output::Media(self.outbound.frame(e)));
        }
        let mut encoded = None;
        while let Some(frame) = self.session.poll_frame() {
            // While keys sound the agent's audio is dropped; a frame that
            // fails to encode is skipped, never the call.
            if !self.outbound.keys_sounding()
                && let Some(e) = self.outbound.encode(self.now, &frame)
            {
                encoded = Some(e);
                break;
            }
        }
        if let Some(e) = encoded {
            return Some(Output::Media(self.outbound.frame(e)));
        }
        while let Some(event) = self.session.poll_event() {
            if let Some(action) = self.action(event) {
                return Some(Output::Action(action));
            }
        }
        if self.session.is_ended() && !self.hung_up {
            self.hung_up = true;
            if !self.transport_ended {
                return Some(Output::Action(Action::HangUp));
            }
        }
        None
    }

    fn action(&mut self, event: SessionEvent) -> Option<Action> {
        Some(match event {
            SessionEvent::Clear => {
                // The agent's next words start a talkspurt.
                self.outbound.mark();
                Action::Clear
            }
            SessionEvent::Transcript { speaker, text, is_final } => {
                Action::Transcript { speaker, text, is_final }
            }
            SessionEvent::Transfer { target } => {
                // The transfer, not a hang-up, ends the call.
                self.transport_ended = true;
                Action::Transfer { target }
            }
            SessionEvent::WarmTransfer { target, announcement } => {
                Action::WarmTransfer { target, announcement }
            }
            SessionEvent::Dtmf { digits } if self.outbound.press(&digits) => return None,
            SessionEvent::Dtmf { digits } => Action::Dtmf { digits },
            SessionEvent::AnsweringMachine(detection) => Action::AnsweringMachine(detection),
            SessionEvent::Ended(_) => return None,
        })
    }

    /// True once the conversation is over (the transport then hangs up, or
    /// has, and calls [`CallCore::finish`]).
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.session.is_ended()
    }

    /// The agent's frame could not be sent (the transport is not keeping up).
    pub fn frame_not_sent(&mut self) {
        self.session.frame_not_sent();
    }

    /// The caller's audio changes codec (a SIP re-INVITE). True when the
    /// RTP clock or sample rate changed: a new stream, with its own SSRC and timestamps
    /// from `initial_timestamp` (RFC 7160, section 4.1).
    ///
    /// # Errors
    /// The codec cannot be set up; the call keeps the one it had.
    pub fn change_codec(&mut self, codec: Codec, initial_timestamp: u32) -> Result<bool, CallError> {
        if codec == self.outbound.codec() {
            return Ok(false);
        }
        let ingress = Ingress::new(codec, self.arrival.clone())?;
        let old = self.outbound.codec();
        let new_rate = codec.clock_rate() != old.clock_rate() || codec.sample_rate() != old.sample_rate();
        if new_rate {
            self.outbound = Outbound::new(codec, self.outbound.carries_keys(), initial_timestamp)?;
        } else {
            self.outbound.set_codec(codec)?;
        }
        self.ingress = ingress;
        Ok(new_rate)
    }

    /// The media timestamp `now` corresponds to, for RTCP sender reports.
    #[must_use]
    pub fn media_timestamp(&self, now: Instant) -> u64 {
        self.outbound.timestamp_at(now)
    }

    /// The caller's interarrival jitter, in ms (RFC 3550), for RTCP.
    #[must_use]
    pub fn caller_jitter_ms(&self) -> f64 {
        self.ingress.jitter_ms()
    }

    /// Ends the call at `now` (if it has not ended) and returns its log.
    #[must_use]
    pub fn finish(mut self, now: Instant) -> CallLog {
        if !self.session.is_ended() {
            self.hang_up(now);
        }
        self.session.finish(now)
    }
}
