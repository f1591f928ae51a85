//! The agent's audio out of a call: 16 kHz frames resampled to the codec's
//! rate and encoded, each stamped on the talkspurt clock; and the keys the
//! agent presses, as RFC 4733 telephone-events on the same clock.

use std::time::Instant;

use voxgate_codecs::dtmf::{DtmfSender, EventPacket};
use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{Codec, Encoder, SampleRate};

use super::clock::Talkspurts;
use super::ingress::resampler;
use super::{CallError, MediaFrame, MediaKind};
use crate::session::Frame;

/// An encoded frame waiting in [`Outbound`]'s buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Encoded {
    len: usize,
    timestamp: u64,
    marker: bool,
}

pub(super) struct Outbound {
    codec: Codec,
    /// 16 kHz -> the codec's rate (none at 16 kHz).
    resample: Option<FrameResampler>,
    encoder: Encoder,
    clock: Talkspurts,
    /// Keys being sent, when the transport carries telephone-events.
    dtmf: Option<DtmfSender>,
    /// The timestamp of the key sounding (every packet of a key keeps its start's).
    event_ts: u64,
    pcm: Vec<i16>,
    payload: Vec<u8>,
}

impl Outbound {
    pub(super) fn new(
        codec: Codec,
        telephone_events: bool,
        initial_timestamp: u32,
    ) -> Result<Self, CallError> {
        let rate = codec.sample_rate();
        // Timestamps count the RTP clock, which is not the sample rate for G.722.
        let per_frame = codec.clock_per_frame();
        Ok(Self {
            codec,
            resample: resampler(SampleRate::HZ_16000, rate)?,
            encoder: codec.encoder()?,
            clock: Talkspurts::new(initial_timestamp, codec.clock_rate(), per_frame),
            dtmf: telephone_events.then(|| DtmfSender::new(per_frame as u16)),
            event_ts: 0,
            pcm: vec![0; rate.samples_per_frame()],
            // A packet's worth, or a frame of 16-bit PCM at the codec's rate
            // if that is more (at 44.1 or 48 kHz it is: a sound card's).
            payload: vec![0; 1500.max(rate.samples_per_frame() * 2)],
        })
    }

    pub(super) fn codec(&self) -> Codec {
        self.codec
    }

    /// Whether keys go in the media.
    pub(super) fn carries_keys(&self) -> bool {
        self.dtmf.is_some()
    }

    /// Queues keys to press; false when the transport carries none.
    pub(super) fn press(&mut self, digits: &str) -> bool {
        self.dtmf.as_mut().map(|d| d.push(digits)).is_some()
    }

    /// Keys are sounding: the agent's audio waits its turn (it is dropped;
    /// the agent rarely talks while it presses keys).
    pub(super) fn keys_sounding(&self) -> bool {
        self.dtmf.as_ref().is_some_and(DtmfSender::is_active)
    }

    /// The next telephone-event packet of this tick, if keys are sounding:
    /// the clock runs on through the keys and the gaps.
    pub(super) fn key_packet(&mut self, now: Instant) -> Option<(EventPacket, u64)> {
        let dtmf = self.dtmf.as_mut().filter(|d| d.is_active())?;
        let (now_ts, _) = self.clock.next(now);
        let event = dtmf.tick();
        // The agent's audio after the keys starts a talkspurt.
        self.clock.mark();
        let event = event?;
        if event.first {
            self.event_ts = now_ts;
        }
        Some((event, self.event_ts))
    }

    /// A key packet as a frame to send.
    pub(super) fn key_frame(&mut self, event: EventPacket, timestamp: u64) -> MediaFrame<'_> {
        self.payload[..event.payload.len()].copy_from_slice(&event.payload);
        MediaFrame {
            kind: MediaKind::TelephoneEvent,
            payload: &self.payload[..event.payload.len()],
            timestamp,
            marker: event.first,
        }
    }

    /// One agent frame at `now`, encoded and stamped: its length,
    /// timestamp and marker ([`Outbound::frame`] gives it).
    pub(super) fn encode(&mut self, now: Instant, frame: &Frame) -> Option<Encoded> {
        let pcm: &[i16] = match self.resample.as_mut() {
            Some(r) => {
                let n = r.process(frame, &mut self.pcm).ok()?;
                &self.pcm[..n]
            }
            None => frame,
        };
        let len = self.encoder.encode(pcm, &mut self.payload).ok()?;
        let (timestamp, marker) = self.clock.next(now);
        Some(Encoded { len, timestamp, marker })
    }

    /// The frame [`Outbound::encode`] made.
    pub(super) fn frame(&self, e: Encoded) -> MediaFrame<'_> {
        MediaFrame {
            kind: MediaKind::Audio,
            payload: &self.payload[..e.len],
            timestamp: e.timestamp,
            marker: e.marker,
        }
    }

    /// Another codec at the same rate: the stream and its clock go on.
    pub(super) fn set_codec(&mut self, codec: Codec) -> Result<(), CallError> {
        self.encoder = codec.encoder()?;
        self.codec = codec;
        Ok(())
    }

    /// Barge-in: the next talkspurt starts with a marker.
    pub(super) fn mark(&mut self) {
        self.clock.mark();
    }

    /// The media timestamp `now` corresponds to, for RTCP sender reports.
    pub(super) fn timestamp_at(&self, now: Instant) -> u64 {
        self.clock.at(now)
    }
}
