//! The receive side of a call's audio: jitter buffer, then decoder, then
//! concealment, one 20 ms frame per poll.
//!
//! A lost packet is rebuilt from the next packet's in-band FEC when the codec
//! carries it (Opus), else concealed by the codec's own PLC, else by a
//! fade-out into comfort noise ([`Concealer`]).

use std::time::Instant;

use voxgate_codecs::{AudioDecoder, CodecError};

use super::conceal::Concealer;
use super::jitter::{JitterBuffer, JitterConfig, PacketFate, Playout, RtpPacket};

/// How a played frame was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSource {
    /// Decoded from its packet.
    Decoded,
    /// Rebuilt from the next packet's forward error correction.
    Fec,
    /// The codec's packet-loss concealment.
    CodecPlc,
    /// Fade-out and comfort noise.
    ComfortNoise,
    /// Nothing is playing yet: silence.
    Idle,
}

/// Jitter buffer, decoder and concealment for one incoming stream.
pub struct AudioPlayout {
    jitter: JitterBuffer,
    decoder: Box<dyn AudioDecoder>,
    concealer: Concealer,
    frame_samples: usize,
    /// Malformed payloads the decoder rejected (concealed instead).
    pub decode_errors: u64,
}

impl std::fmt::Debug for AudioPlayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioPlayout")
            .field("jitter", &self.jitter.stats())
            .field("decode_errors", &self.decode_errors)
            .finish_non_exhaustive()
    }
}

impl AudioPlayout {
    /// Builds the receive path for `decoder`.
    #[must_use]
    pub fn new(config: JitterConfig, decoder: Box<dyn AudioDecoder>) -> Self {
        let frame_samples = decoder.sample_rate().samples_per_frame();
        Self {
            jitter: JitterBuffer::new(config),
            decoder,
            concealer: Concealer::new(frame_samples),
            frame_samples,
            decode_errors: 0,
        }
    }

    /// The jitter buffer, for its statistics.
    #[must_use]
    pub fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// Samples per frame at the decoder's rate.
    #[must_use]
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Takes one arriving packet.
    pub fn handle_packet(&mut self, now: Instant, packet: RtpPacket<'_>) -> PacketFate {
        self.jitter.handle_packet(now, packet)
    }

    /// Produces the next 20 ms into `out` (at least one frame long).
    ///
    /// # Errors
    /// Only a too-short `out`; a malformed payload is concealed and counted.
    pub fn poll_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<FrameSource, CodecError> {
        let n = self.frame_samples;
        let capacity = out.len();
        let out = out.get_mut(..n).ok_or(CodecError::OutputTooSmall { needed: n, capacity })?;
        let source = match self.jitter.poll_frame(now) {
            Playout::Idle => {
                out.fill(0);
                return Ok(FrameSource::Idle);
            }
            Playout::Frame { payload, .. } => match self.decoder.decode(payload, out) {
                Ok(got) if got == n => FrameSource::Decoded,
                // A packet of another duration, or garbage: conceal this frame.
                Ok(_) | Err(_) => {
                    self.decode_errors += 1;
                    return self.conceal(out);
                }
            },
            Playout::Conceal { next: Some(next), .. } => match self.decoder.recover(next, out) {
                Ok(Some(got)) if got == n => FrameSource::Fec,
                _ => return self.conceal(out),
            },
            Playout::Conceal { next: None, .. } => return self.conceal(out),
        };
        self.concealer.handle_good_frame(out);
        Ok(source)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<FrameSource, CodecError> {
        // The codec's PLC for the first frames; it fades on its own after that.
        match self.decoder.conceal(out)? {
            Some(got) if got == out.len() => Ok(FrameSource::CodecPlc),
            _ => {
                self.concealer.conceal(out);
                Ok(FrameSource::ComfortNoise)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use voxgate_codecs::g711::G711Law;
    use voxgate_codecs::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
    use voxgate_codecs::{G711Decoder, SampleRate};

    use super::*;

    fn tone(rate: SampleRate, frames: usize) -> Vec<i16> {
        (0..rate.samples_per_frame() * frames)
            .map(|i| {
                ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / rate.hz() as f32).sin() * 6000.0) as i16
            })
            .collect()
    }

    /// Sends `payloads` every 20 ms (5 ms network delay), dropping the
    /// indices in `lost`, and polls every 20 ms; returns each poll's source.
    fn play(
        mut playout: AudioPlayout,
        payloads: &[Vec<u8>],
        lost: &[usize],
        clock_rate: u32,
    ) -> (Vec<FrameSource>, AudioPlayout) {
        let t0 = Instant::now();
        let mut out = vec![0i16; playout.frame_samples()];
        let mut sources = Vec::new();
        for tick in 0..payloads.len() + 10 {
            if let Some(p) = payloads.get(tick).filter(|_| !lost.contains(&tick)) {
                let packet = RtpPacket {
                    seq: tick as u16,
                    timestamp: (tick as u32) * clock_rate / 50,
                    ssrc: 9,
                    marker: tick == 0,
                    payload: p,
                };
                playout.handle_packet(t0 + Duration::from_millis(20 * tick as u64 + 5), packet);
            }
            let source = playout.poll_frame(t0 + Duration::from_millis(20 * tick as u64 + 10), &mut out);
            sources.push(source.expect("buffer is one frame"));
        }
        (sources, playout)
    }

    fn count(sources: &[FrameSource], kind: FrameSource) -> usize {
        sources.iter().filter(|&&s| s == kind).count()
    }

    #[test]
    fn g711_losses_fade_into_comfort_noise() {
        let pcm = tone(SampleRate::HZ_8000, 50);
        let payloads: Vec<Vec<u8>> = pcm
            .chunks(160)
            .map(|f| {
                let mut p = vec![0u8; 160];
                G711Law::Ulaw.encode(f, &mut p).map(|_| p)
            })
            .collect::<Result<_, _>>()
            .expect("encode");
        let playout = AudioPlayout::new(JitterConfig::default(), Box::new(G711Decoder(G711Law::Ulaw)));
        let (sources, playout) = play(playout, &payloads, &[10, 20, 21], 8000);
        assert!(count(&sources, FrameSource::ComfortNoise) >= 3, "{sources:?}");
        assert_eq!(count(&sources, FrameSource::Decoded), 47, "{sources:?}");
        assert_eq!(playout.jitter().stats().lost, 3);
    }

    fn opus_payloads(fec: bool) -> Vec<Vec<u8>> {
        let rate = SampleRate::HZ_16000;
        let mut config = OpusEncoderConfig::voice(rate);
        config.inband_fec = fec;
        config.expected_loss_percent = if fec { 20 } else { 0 };
        config.bitrate = Some(32_000);
        let mut enc = OpusEncoder::new(config).expect("encoder");
        tone(rate, 50)
            .chunks(320)
            .map(|f| {
                let mut p = [0u8; 1500];
                enc.encode(f, &mut p).map(|n| p[..n].to_vec())
            })
            .collect::<Result<_, _>>()
            .expect("encode")
    }

    #[test]
    fn opus_rebuilds_a_single_loss_from_fec() {
        let decoder = OpusDecoder::new(SampleRate::HZ_16000).expect("decoder");
        let config = JitterConfig { clock_rate: 48_000, ..JitterConfig::default() };
        let (sources, _) =
            play(AudioPlayout::new(config, Box::new(decoder)), &opus_payloads(true), &[15], 48_000);
        assert_eq!(count(&sources, FrameSource::Fec), 1, "{sources:?}");
        assert_eq!(count(&sources, FrameSource::Decoded), 49);
    }

    #[test]
    fn opus_without_fec_uses_its_own_plc_and_garbage_is_concealed() {
        let decoder = OpusDecoder::new(SampleRate::HZ_16000).expect("decoder");
        let config = JitterConfig { clock_rate: 48_000, ..JitterConfig::default() };
        let mut payloads = opus_payloads(false);
        // Packet 30: a TOC claiming 120 ms of audio, which cannot be one 20 ms frame.
        payloads[30] = vec![0xFB, 0xFF, 0xFF, 0x00];
        // Losing two in a row leaves no next packet with FEC for the first.
        let (sources, playout) =
            play(AudioPlayout::new(config, Box::new(decoder)), &payloads, &[15, 16], 48_000);
        assert_eq!(count(&sources, FrameSource::Fec), 0, "{sources:?}");
        // Two losses and the garbage packet; then the stream ends and the
        // codec keeps concealing while the buffer is dry.
        assert_eq!(
            sources[18..21],
            [FrameSource::CodecPlc, FrameSource::CodecPlc, FrameSource::Decoded],
            "{sources:?}"
        );
        assert_eq!(sources[33], FrameSource::CodecPlc, "{sources:?}");
        assert_eq!(count(&sources, FrameSource::Decoded), 47, "{sources:?}");
        assert_eq!(playout.decode_errors, 1);
    }
}
