//! The caller's audio into a call, one 16 kHz frame per tick, however it
//! arrives: RTP packets through the jitter buffer and decoder (SIP,
//! WebRTC), or an in-order stream of encoded bytes or samples (websocket
//! streams, a local sound card) queued and taken a frame at a time.

use std::collections::VecDeque;
use std::time::Instant;

use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{AudioDecoder, Codec, CodecError, SampleRate};

use super::{Arrival, CallError};
use crate::dsp::jitter::{JitterConfig, RtpPacket};
use crate::dsp::playout::AudioPlayout;
use crate::metrics::{FateLabel, metrics};
use crate::session::Frame;

/// The most caller audio an in-order stream may queue: a second. A client
/// faster than real time loses what does not fit.
const MAX_QUEUED_MS: u32 = 1000;

pub(super) struct Ingress {
    source: Source,
    /// The codec's rate -> 16 kHz (none at 16 kHz).
    resample: Option<FrameResampler>,
    /// One frame at the codec's rate.
    pcm: Vec<i16>,
}

enum Source {
    Packets(Box<AudioPlayout>),
    InOrder(Queue),
}

struct Queue {
    decoder: Box<dyn AudioDecoder>,
    bytes_per_sample: usize,
    /// Bytes short of a whole frame.
    pending: Vec<u8>,
    samples: VecDeque<i16>,
    max_samples: usize,
}

impl Ingress {
    pub(super) fn new(codec: Codec, arrival: Arrival) -> Result<Self, CallError> {
        let rate = codec.sample_rate();
        let decoder = codec.decoder()?;
        let source = match arrival {
            Arrival::Packets(jitter) => {
                // Transit times are measured on the codec's RTP clock.
                let jitter = JitterConfig { clock_rate: codec.clock_rate(), ..jitter };
                Source::Packets(Box::new(AudioPlayout::new(jitter, decoder)))
            }
            Arrival::InOrder => {
                let bytes_per_sample = match codec {
                    Codec::Pcmu | Codec::Pcma => 1,
                    Codec::PcmLe(_) => 2,
                    other => return Err(CallError::NotInOrder(other)),
                };
                let max_samples = rate.samples_in_ms(MAX_QUEUED_MS);
                Source::InOrder(Queue {
                    decoder,
                    bytes_per_sample,
                    pending: Vec::new(),
                    samples: VecDeque::with_capacity(max_samples),
                    max_samples,
                })
            }
        };
        Ok(Self {
            source,
            resample: resampler(rate, SampleRate::HZ_16000)?,
            pcm: vec![0; rate.samples_per_frame()],
        })
    }

    /// An RTP packet arrived at `now`. Ignored by an in-order stream.
    pub(super) fn handle_packet(&mut self, now: Instant, packet: RtpPacket<'_>) {
        if let Source::Packets(playout) = &mut self.source {
            playout.handle_packet(now, packet);
        }
    }

    /// Encoded bytes arrived in order. Ignored for packets. Returns false
    /// for bytes that do not decode.
    pub(super) fn handle_bytes(&mut self, bytes: &[u8]) -> bool {
        let Source::InOrder(q) = &mut self.source else { return true };
        q.pending.extend_from_slice(bytes);
        let frame_bytes = self.pcm.len() * q.bytes_per_sample;
        let whole = q.pending.len() / frame_bytes * frame_bytes;
        let mut ok = true;
        for chunk in q.pending[..whole].chunks_exact(frame_bytes) {
            match q.decoder.decode(chunk, &mut self.pcm) {
                Ok(n) if q.samples.len() + n <= q.max_samples => q.samples.extend(&self.pcm[..n]),
                Ok(_) => {}
                Err(_) => ok = false,
            }
        }
        q.pending.drain(..whole);
        ok
    }

    /// Samples at the codec's rate arrived in order (a sound card). Ignored for packets.
    pub(super) fn handle_samples(&mut self, samples: &[i16]) {
        if let Source::InOrder(q) = &mut self.source {
            let room = q.max_samples.saturating_sub(q.samples.len());
            q.samples.extend(&samples[..samples.len().min(room)]);
        }
    }

    /// The caller's frame of this tick (silence when none is there).
    pub(super) fn poll_frame(&mut self, now: Instant, out: &mut Frame) {
        let n = self.pcm.len();
        let decoded = match &mut self.source {
            Source::Packets(playout) => playout.poll_frame(now, &mut self.pcm).is_ok(),
            Source::InOrder(q) if q.samples.len() >= n => {
                for (s, v) in self.pcm.iter_mut().zip(q.samples.drain(..n)) {
                    *s = v;
                }
                true
            }
            Source::InOrder(_) => false,
        };
        let done = decoded
            && match self.resample.as_mut() {
                Some(r) => r.process(&self.pcm, out).is_ok(),
                None => {
                    out.copy_from_slice(&self.pcm);
                    true
                }
            };
        if !done {
            out.fill(0);
        }
    }

    /// The jitter buffer's delay and the caller's jitter in ms, for RTCP.
    pub(super) fn jitter_ms(&self) -> f64 {
        match &self.source {
            Source::Packets(playout) => playout.jitter().stats().jitter_ms,
            Source::InOrder(_) => 0.0,
        }
    }
}

/// A call's media ends with it: its jitter buffer's counts go to the metrics.
impl Drop for Ingress {
    fn drop(&mut self) {
        let Source::Packets(playout) = &self.source else { return };
        let s = playout.jitter().stats();
        let m = metrics();
        for (fate, n) in [
            ("received", s.received),
            ("late", s.late),
            ("lost", s.lost),
            ("concealed", s.concealed),
            ("duplicate", s.duplicates),
        ] {
            m.jitter_packets.get_or_create(&FateLabel { fate }).inc_by(n);
        }
        if s.received > 0 {
            m.jitter_delay.observe(f64::from(s.target_delay_ms) / 1000.0);
        }
    }
}

/// A resampler between two rates; none when they are the same.
pub(super) fn resampler(from: SampleRate, to: SampleRate) -> Result<Option<FrameResampler>, CodecError> {
    if from == to { Ok(None) } else { FrameResampler::new(from, to).map(Some) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_order_stream_keeps_a_second_and_gives_whole_frames_a_tick_each() {
        let mut ingress = Ingress::new(Codec::PcmLe(SampleRate::HZ_16000), Arrival::InOrder).expect("PCM");
        let now = Instant::now();
        let mut frame: Frame = [7; 320];
        // Half a frame is not a frame yet: silence.
        ingress.handle_samples(&[5; 160]);
        ingress.poll_frame(now, &mut frame);
        assert_eq!(frame, [0; 320]);
        ingress.handle_samples(&[5; 160]);
        // Two seconds more, each frame numbered: only the first second fits.
        let numbered: Vec<i16> = (1..=100).flat_map(|f| std::iter::repeat_n(f, 320)).collect();
        ingress.handle_samples(&numbered);
        let firsts: Vec<i16> = (0..51)
            .map(|_| {
                ingress.poll_frame(now, &mut frame);
                frame[0]
            })
            .collect();
        assert_eq!(firsts[0], 5);
        assert_eq!(firsts[1..], (1..=49).chain([0]).collect::<Vec<i16>>()[..], "in order, then nothing");
    }
}
