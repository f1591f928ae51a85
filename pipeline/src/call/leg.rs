//! A call leg with no conversation of its own: the human's side of a warm
//! transfer. Sans-IO, like the call core: the far end's packets go through
//! the same jitter buffer and decoder to 16 kHz frames, and 16 kHz frames
//! go out encoded on the talkspurt clock. It first plays what it is given
//! (the announcement), then whatever the transport hands it each tick (the
//! caller's audio, once bridged).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use voxgate_codecs::Codec;

use super::ingress::Ingress;
use super::outbound::Outbound;
use super::{Arrival, CallError, MediaFrame};
use crate::dsp::Frame;
use crate::dsp::vad::FRAME_SAMPLES;

/// See the module documentation.
pub struct Leg {
    ingress: Ingress,
    outbound: Outbound,
    /// The far end's frame of the last tick.
    heard: Frame,
    /// Audio to play before anything else (16 kHz).
    queued: VecDeque<i16>,
    last_media: Instant,
    now: Instant,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("codec", &self.outbound.codec())
            .field("queued_ms", &(self.queued.len() / 16))
            .finish_non_exhaustive()
    }
}

impl Leg {
    /// A leg in `codec` both ways, its stream's timestamps from `initial_timestamp`.
    ///
    /// # Errors
    /// The codec cannot be set up this way.
    pub fn new(
        now: Instant,
        codec: Codec,
        arrival: Arrival,
        initial_timestamp: u32,
    ) -> Result<Self, CallError> {
        Ok(Self {
            ingress: Ingress::new(codec, arrival)?,
            outbound: Outbound::new(codec, false, initial_timestamp)?,
            heard: [0; FRAME_SAMPLES],
            queued: VecDeque::new(),
            last_media: now,
            now,
        })
    }

    /// The far end's RTP packet, arrived at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: crate::dsp::jitter::RtpPacket<'_>) {
        self.last_media = now;
        self.ingress.handle_packet(now, packet);
    }

    /// One 20 ms tick: the far end's frame of it (silence when nothing came).
    pub fn handle_tick(&mut self, now: Instant) -> &Frame {
        self.now = now;
        self.ingress.poll_frame(now, &mut self.heard);
        &self.heard
    }

    /// Plays `audio` (16 kHz) before anything else.
    pub fn play(&mut self, audio: &[i16]) {
        self.queued.extend(audio);
    }

    /// True while audio given to [`Leg::play`] has not all gone out.
    #[must_use]
    pub fn is_playing(&self) -> bool {
        !self.queued.is_empty()
    }

    /// This tick's frame out: what [`Leg::play`] queued, else `bridged`
    /// (the other leg's audio), else nothing.
    pub fn poll_frame(&mut self, bridged: Option<&Frame>) -> Option<MediaFrame<'_>> {
        let mut frame: Frame = [0; FRAME_SAMPLES];
        if self.queued.is_empty() {
            frame = *bridged?;
        } else {
            let n = self.queued.len().min(FRAME_SAMPLES);
            for (s, v) in frame.iter_mut().zip(self.queued.drain(..n)) {
                *s = v;
            }
        }
        let e = self.outbound.encode(self.now, &frame)?;
        Some(self.outbound.frame(e))
    }

    /// How long since the far end's last packet.
    #[must_use]
    pub fn since_media(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_media)
    }

    /// The media timestamp `now` corresponds to, for RTCP sender reports.
    #[must_use]
    pub fn media_timestamp(&self, now: Instant) -> u64 {
        self.outbound.timestamp_at(now)
    }

    /// The far end's interarrival jitter, in ms (RFC 3550), for RTCP.
    #[must_use]
    pub fn jitter_ms(&self) -> f64 {
        self.ingress.jitter_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::jitter::{JitterConfig, RtpPacket};

    #[test]
    fn a_leg_plays_its_announcement_then_the_bridged_audio_and_hears_the_far_end() {
        let start = Instant::now();
        let mut leg =
            Leg::new(start, Codec::Pcmu, Arrival::Packets(JitterConfig::default()), 1000).expect("PCMU");
        // 50 ms of announcement: three frames, the last padded.
        leg.play(&[1000; 800]);
        let mut sent = Vec::new();
        let caller: Frame = [-2000; FRAME_SAMPLES];
        for i in 0..5u32 {
            let now = start + Duration::from_millis(20 * u64::from(i));
            leg.handle_tick(now);
            let bridged = (i >= 2).then_some(&caller);
            if let Some(f) = leg.poll_frame(bridged) {
                sent.push((f.timestamp, f.payload.to_vec()));
            }
        }
        assert_eq!(sent.len(), 5, "three frames of announcement, then two of the caller");
        assert!(!leg.is_playing());
        // Timestamps count 160 a frame at 8 kHz, from the first.
        let stamps: Vec<u64> = sent.iter().map(|(t, _)| *t - sent[0].0).collect();
        assert_eq!(stamps, [0, 160, 320, 480, 640]);
        // PCMU of +1000 and -2000 differ in their sign bit.
        assert_ne!(sent[0].1[0] & 0x80, sent[4].1[0] & 0x80);
        // Nothing queued and nothing bridged: nothing sent.
        assert!(leg.poll_frame(None).is_none());
        // The far end's audio comes out of the jitter buffer as 16 kHz frames.
        let payload = vec![voxgate_codecs::g711::ulaw_encode(3000); 160];
        let t0 = start + Duration::from_millis(200);
        for k in 0..10u16 {
            let at = t0 + Duration::from_millis(20 * u64::from(k));
            let packet = RtpPacket {
                seq: k,
                timestamp: u32::from(k) * 160,
                ssrc: 7,
                marker: k == 0,
                payload: &payload,
            };
            leg.handle_packet(at, packet);
        }
        let mut loud = 0;
        for k in 0..20u64 {
            let heard = leg.handle_tick(t0 + Duration::from_millis(200 + 20 * k));
            if heard.iter().any(|&s| s > 2000) {
                loud += 1;
            }
        }
        assert!(loud >= 5, "the far end's audio was not heard ({loud} frames)");
        assert_eq!(leg.since_media(t0 + Duration::from_millis(180)), Duration::ZERO);
    }
}
