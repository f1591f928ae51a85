//! Opus (RFC 6716) through libopus, mono, 20 ms frames at 8, 16 or 48 kHz.
//!
//! Loss handling: [`OpusDecoder::conceal`] runs libopus's packet-loss
//! concealment for a missing packet, and [`OpusDecoder::recover_fec`] rebuilds a
//! missing packet from the in-band FEC (LBRR) data carried by the packet after
//! it, when the sender enabled [`OpusEncoderConfig::inband_fec`].

use crate::{AudioDecoder, CodecError, SampleRate};

/// The largest Opus packet (RFC 6716 §3.4: 1275 bytes per frame, up to 3 frames is 3828;
/// Voxgate sends single 20 ms frames, so the one-frame limit plus headers).
pub const MAX_PACKET_BYTES: usize = 1500;

fn opus_err(call: &'static str) -> impl FnOnce(opus::Error) -> CodecError {
    move |source| CodecError::Opus { call, source }
}

fn check_rate(rate: SampleRate) -> Result<(), CodecError> {
    match rate.hz() {
        8_000 | 12_000 | 16_000 | 24_000 | 48_000 => Ok(()),
        _ => Err(CodecError::UnsupportedRate { rate }),
    }
}

/// How to run the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusEncoderConfig {
    /// Input rate; the frame is 20 ms of it.
    pub rate: SampleRate,
    /// 0 (fastest) ..= 10 (best). libopus's default is 9.
    pub complexity: u8,
    /// Target bitrate in bits per second; `None` lets libopus choose.
    pub bitrate: Option<u32>,
    /// Carry a low-bitrate copy of the previous frame for FEC.
    pub inband_fec: bool,
    /// Expected packet loss in percent; FEC is only sent when this is above 0.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission during silence.
    pub dtx: bool,
}

impl OpusEncoderConfig {
    /// Voice defaults at `rate`: complexity 9, libopus's bitrate, no FEC, no DTX.
    #[must_use]
    pub fn voice(rate: SampleRate) -> Self {
        Self { rate, complexity: 9, bitrate: None, inband_fec: false, expected_loss_percent: 0, dtx: false }
    }
}

/// A mono Opus encoder for 20 ms frames.
pub struct OpusEncoder {
    inner: opus::Encoder,
    frame_samples: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").field("frame_samples", &self.frame_samples).finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Builds a VoIP-mode encoder.
    ///
    /// # Errors
    /// An unsupported rate or a setting libopus refuses.
    pub fn new(config: OpusEncoderConfig) -> Result<Self, CodecError> {
        check_rate(config.rate)?;
        let mut inner = opus::Encoder::new(config.rate.hz(), opus::Channels::Mono, opus::Application::Voip)
            .map_err(opus_err("encoder_create"))?;
        inner.set_complexity(i32::from(config.complexity.min(10))).map_err(opus_err("set_complexity"))?;
        if let Some(bps) = config.bitrate {
            let bps = i32::try_from(bps).unwrap_or(i32::MAX);
            inner.set_bitrate(opus::Bitrate::Bits(bps)).map_err(opus_err("set_bitrate"))?;
        }
        inner.set_inband_fec(config.inband_fec).map_err(opus_err("set_inband_fec"))?;
        inner
            .set_packet_loss_perc(i32::from(config.expected_loss_percent.min(100)))
            .map_err(opus_err("set_packet_loss_perc"))?;
        inner.set_dtx(config.dtx).map_err(opus_err("set_dtx"))?;
        Ok(Self { inner, frame_samples: config.rate.samples_per_frame() })
    }

    /// Samples one frame must have.
    #[must_use]
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes exactly one 20 ms frame into `out`; returns the packet length.
    ///
    /// # Errors
    /// A frame of the wrong length, or a too-small `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if pcm.len() != self.frame_samples {
            return Err(CodecError::FrameSize { len: pcm.len(), expected: self.frame_samples });
        }
        self.inner.encode(pcm, out).map_err(opus_err("encode"))
    }
}

/// True when `packet` carries in-band FEC (LBRR) data for the packet before it.
#[must_use]
pub fn packet_has_fec(packet: &[u8]) -> bool {
    let Ok(len) = i32::try_from(packet.len()) else {
        return false;
    };
    if packet.is_empty() {
        return false;
    }
    // SAFETY: the pointer and length describe a live slice; libopus only
    // reads `len` bytes from it and keeps no reference.
    unsafe { opusic_sys::opus_packet_has_lbrr(packet.as_ptr(), len) == 1 }
}

/// A mono Opus decoder producing 20 ms frames (any Opus packet decodes at any rate).
pub struct OpusDecoder {
    inner: opus::Decoder,
    rate: SampleRate,
    frame_samples: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").field("rate", &self.rate).finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Builds a decoder that outputs at `rate`.
    ///
    /// # Errors
    /// An unsupported rate.
    pub fn new(rate: SampleRate) -> Result<Self, CodecError> {
        check_rate(rate)?;
        let inner =
            opus::Decoder::new(rate.hz(), opus::Channels::Mono).map_err(opus_err("decoder_create"))?;
        Ok(Self { inner, rate, frame_samples: rate.samples_per_frame() })
    }

    fn check(&self, payload: &[u8], out: &[i16]) -> Result<(), CodecError> {
        if payload.is_empty() {
            return Err(CodecError::Truncated { len: 0, unit: 1 });
        }
        if payload.len() > MAX_PACKET_BYTES {
            return Err(CodecError::Oversize { len: payload.len(), max: MAX_PACKET_BYTES });
        }
        // libopus writes as many samples as the packet holds (up to 120 ms);
        // ask before decoding so a long packet cannot overrun `out`.
        let needed = opus::packet::get_nb_samples(payload, self.rate.hz())
            .map_err(opus_err("packet_get_nb_samples"))?;
        if needed > out.len() {
            return Err(CodecError::OutputTooSmall { needed, capacity: out.len() });
        }
        Ok(())
    }

    /// Rebuilds the packet *before* `next_payload` from its in-band FEC data
    /// into `out` (one 20 ms frame). Without FEC data this is concealment.
    ///
    /// # Errors
    /// Garbage in `next_payload` or a short `out`.
    pub fn recover_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.check(next_payload, out)?;
        let capacity = out.len();
        let out = out
            .get_mut(..self.frame_samples)
            .ok_or(CodecError::OutputTooSmall { needed: self.frame_samples, capacity })?;
        self.inner.decode(next_payload, out, true).map_err(opus_err("decode_fec"))
    }
}

impl AudioDecoder for OpusDecoder {
    fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.check(payload, out)?;
        self.inner.decode(payload, out, false).map_err(opus_err("decode"))
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        let capacity = out.len();
        let out = out
            .get_mut(..self.frame_samples)
            .ok_or(CodecError::OutputTooSmall { needed: self.frame_samples, capacity })?;
        self.inner.decode(&[], out, false).map(Some).map_err(opus_err("decode_plc"))
    }

    fn recover(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        // Without LBRR data libopus would quietly conceal instead: say so.
        if !packet_has_fec(next_payload) {
            return Ok(None);
        }
        self.recover_fec(next_payload, out).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: SampleRate, freq: f32, frames: usize) -> Vec<i16> {
        let n = rate.samples_per_frame() * frames;
        (0..n)
            .map(|i| {
                let t = i as f32 / rate.hz() as f32;
                (8000.0 * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64
    }

    #[test]
    fn encodes_and_decodes_at_each_rate() -> Result<(), CodecError> {
        for rate in [SampleRate::HZ_8000, SampleRate::HZ_16000, SampleRate::HZ_48000] {
            let mut enc = OpusEncoder::new(OpusEncoderConfig::voice(rate))?;
            let mut dec = OpusDecoder::new(rate)?;
            let input = sine(rate, 440.0, 10);
            let mut packet = [0u8; MAX_PACKET_BYTES];
            let mut out = vec![0i16; rate.samples_per_frame()];
            let mut decoded = Vec::new();
            for frame in input.chunks(rate.samples_per_frame()) {
                let n = enc.encode(frame, &mut packet)?;
                assert!(n > 0 && n < 400, "{rate}: packet of {n} bytes");
                let m = dec.decode(&packet[..n], &mut out)?;
                assert_eq!(m, rate.samples_per_frame());
                decoded.extend_from_slice(&out[..m]);
            }
            // After the codec's start-up, the tone comes through at similar energy.
            let tail = &decoded[decoded.len() / 2..];
            let ratio = energy(tail) / energy(&input[input.len() / 2..]);
            assert!((0.5..2.0).contains(&ratio), "{rate}: energy ratio {ratio}");
        }
        Ok(())
    }

    #[test]
    fn concealment_fills_a_missing_frame_with_something_like_the_signal() -> Result<(), CodecError> {
        let rate = SampleRate::HZ_16000;
        let mut enc = OpusEncoder::new(OpusEncoderConfig::voice(rate))?;
        let mut dec = OpusDecoder::new(rate)?;
        let input = sine(rate, 300.0, 10);
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let mut out = [0i16; 320];
        for frame in input.chunks(320) {
            let n = enc.encode(frame, &mut packet)?;
            dec.decode(&packet[..n], &mut out)?;
        }
        assert_eq!(dec.conceal(&mut out)?, Some(320));
        assert!(energy(&out) > 1e5, "PLC produced near silence: {}", energy(&out));
        Ok(())
    }

    #[test]
    fn fec_recovers_a_lost_frame_that_concealment_cannot_guess() -> Result<(), CodecError> {
        let rate = SampleRate::HZ_16000;
        let mut config = OpusEncoderConfig::voice(rate);
        config.inband_fec = true;
        config.expected_loss_percent = 20;
        config.bitrate = Some(32_000);
        let mut enc = OpusEncoder::new(config)?;
        // Silence for 10 frames, then a tone that starts exactly in the lost frame:
        // concealment extrapolates the silence, only FEC knows the tone began.
        let mut input = vec![0i16; 320 * 10];
        input.extend(sine(rate, 300.0, 10));
        let packets: Vec<Vec<u8>> = input
            .chunks(320)
            .map(|f| {
                let mut p = [0u8; MAX_PACKET_BYTES];
                enc.encode(f, &mut p).map(|n| p[..n].to_vec())
            })
            .collect::<Result<_, _>>()?;
        let mut out = [0i16; 320];
        let mut with_fec = OpusDecoder::new(rate)?;
        let mut with_plc = OpusDecoder::new(rate)?;
        for p in &packets[..10] {
            with_fec.decode(p, &mut out)?;
            with_plc.decode(p, &mut out)?;
        }
        // Packet 10 is lost; packet 11 carries its FEC copy.
        assert!(packet_has_fec(&packets[11]));
        assert_eq!(with_fec.recover_fec(&packets[11], &mut out)?, 320);
        let recovered = energy(&out);
        assert_eq!(with_plc.conceal(&mut out)?, Some(320));
        let concealed = energy(&out);
        assert!(recovered > 1e5, "FEC frame energy {recovered}");
        assert!(recovered > 100.0 * concealed.max(1.0), "FEC {recovered} vs PLC {concealed}");
        assert_eq!(with_fec.decode(&packets[11], &mut out)?, 320);
        Ok(())
    }

    #[test]
    fn packets_without_fec_enabled_carry_none() -> Result<(), CodecError> {
        let rate = SampleRate::HZ_16000;
        let mut enc = OpusEncoder::new(OpusEncoderConfig::voice(rate))?;
        let mut p = [0u8; MAX_PACKET_BYTES];
        for frame in sine(rate, 300.0, 5).chunks(320) {
            let n = enc.encode(frame, &mut p)?;
            assert!(!packet_has_fec(&p[..n]));
        }
        assert!(!packet_has_fec(&[]));
        Ok(())
    }

    #[test]
    fn rejects_wrong_frame_sizes_and_garbage() -> Result<(), CodecError> {
        let mut enc = OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_48000))?;
        let mut packet = [0u8; 100];
        assert!(matches!(
            enc.encode(&[0; 100], &mut packet),
            Err(CodecError::FrameSize { len: 100, expected: 960 })
        ));
        let mut dec = OpusDecoder::new(SampleRate::HZ_48000)?;
        let mut out = [0i16; 960];
        assert!(dec.decode(&[], &mut out).is_err());
        assert!(dec.decode(&[0u8; 4000], &mut out).is_err());
        // A TOC byte claiming 120 ms of frames cannot fit a 20 ms buffer.
        assert!(dec.decode(&[0xFB, 0xFF, 0xFF], &mut out).is_err());
        assert!(matches!(OpusDecoder::new(SampleRate(44_100)), Err(CodecError::UnsupportedRate { .. })));
        Ok(())
    }
}
