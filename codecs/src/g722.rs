//! G.722 (ITU-T, sub-band ADPCM): 16 kHz wideband audio at 64 kbit/s, one
//! byte per two samples. On RTP its clock is 8000 Hz (RFC 3551, an error
//! kept for compatibility), so a 20 ms packet is 160 bytes, 320 samples and
//! 160 timestamp units.
//!
//! Written here from the ITU-T algorithm (mode 1, 64 kbit/s): a quadrature
//! mirror filter splits the band in two; the lower half is coded with a
//! 6-bit adaptive quantiser, the upper with a 2-bit one, each with its own
//! pole-zero predictor. `tests/g722_reference.rs` checks it bit-exact
//! against spandsp's. (The crates we found were not: `audio-codec` starts
//! its scale factors four times the standard's, and `ezk-g722` brings tokio.)

use crate::{AudioDecoder, CodecError, SampleRate, pcm};

/// The RTP clock rate of G.722 (RFC 3551 §4.5.2), half its sample rate.
pub const RTP_CLOCK_HZ: u32 = 8000;

/// The quadrature mirror filter's coefficients (half of its 24 taps).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];
/// The lower band quantiser's decision levels.
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121,
    1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// Lower band codes of negative and positive differences, by decision interval.
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
    7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37,
    36, 35, 34, 33, 32, 0,
];
/// The lower band's 4-bit inverse quantiser (the predictor's input).
const QM4: [i32; 16] =
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
/// The lower band's 6-bit inverse quantiser (the decoder's output).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360,
    -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688,
    -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856,
    7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136,
    -432, -136,
];
/// The lower band's scale factor: code -> adaptation step.
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// The upper band's codes, inverse quantiser and scale factor steps.
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const RH2: [i32; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];
/// The inverse of the log scale: 2^(i/32), in Q11.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896,
    2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

fn saturate(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// One sub-band's adaptive predictor and scale factor.
#[derive(Debug, Clone, Copy, Default)]
struct Band {
    /// The signal estimate, and its pole and zero parts.
    s: i32,
    sp: i32,
    sz: i32,
    /// Reconstructed signals, partial reconstructions and differences, newest first.
    r: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    /// Pole and zero coefficients, and their next values.
    a: [i32; 3],
    ap: [i32; 3],
    b: [i32; 7],
    bp: [i32; 7],
    /// The log scale factor, and the scale factor it gives.
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Self { det, ..Self::default() }
    }

    /// The log scale factor moves by `step`, within `max`; the scale factor
    /// follows (`shift` is 8 for the lower band, 10 for the upper).
    fn scale(&mut self, step: i32, max: i32, shift: i32) {
        self.nb = (((self.nb * 127) >> 7) + step).clamp(0, max);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let exponent = shift - (self.nb >> 11);
        let wd3 = if exponent < 0 { mantissa << -exponent } else { mantissa >> exponent };
        self.det = wd3 << 2;
    }

    /// Adapts the predictor to the quantised difference `d` and predicts the
    /// next sample.
    fn adapt(&mut self, d: i32) {
        self.d[0] = d;
        self.r[0] = saturate(self.s + d);
        self.p[0] = saturate(self.sz + d);
        // The second pole coefficient.
        let sign = |x: i32| x >> 15;
        let wd1 = saturate(self.a[1] << 2);
        let wd2 = if sign(self.p[0]) == sign(self.p[1]) { -wd1 } else { wd1 }.min(32767);
        let wd3 = if sign(self.p[0]) == sign(self.p[2]) { 128 } else { -128 }
            + (wd2 >> 7)
            + ((self.a[2] * 32512) >> 15);
        self.ap[2] = wd3.clamp(-12288, 12288);
        // The first pole coefficient, bounded by the second.
        let wd1 = if sign(self.p[0]) == sign(self.p[1]) { 192 } else { -192 };
        self.ap[1] = saturate(wd1 + ((self.a[1] * 32640) >> 15));
        let bound = saturate(15360 - self.ap[2]);
        self.ap[1] = self.ap[1].clamp(-bound, bound);
        // The zero coefficients.
        let step = if d == 0 { 0 } else { 128 };
        for i in 1..7 {
            let wd2 = if sign(self.d[i]) == sign(d) { step } else { -step };
            self.bp[i] = saturate(wd2 + ((self.b[i] * 32640) >> 15));
        }
        // One sample on.
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }
        // The next estimate: poles, then zeros.
        let pole = |a: i32, r: i32| (a * saturate(r + r)) >> 15;
        self.sp = saturate(pole(self.a[1], self.r[1]) + pole(self.a[2], self.r[2]));
        let zeros: i32 = (1..7).rev().map(|i| (self.b[i] * saturate(self.d[i] + self.d[i])) >> 15).sum();
        self.sz = saturate(zeros);
        self.s = saturate(self.sp + self.sz);
    }
}

/// Encodes 16 kHz PCM into G.722 at 64 kbit/s.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    /// The transmit QMF's last 24 input samples.
    x: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self { x: [0; 24], low: Band::new(32), high: Band::new(8) }
    }
}

impl G722Encoder {
    /// Encodes `pcm` (16 kHz, an even number of samples) into `out`; the bytes written.
    ///
    /// # Errors
    /// An odd number of samples, or a short `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::FrameSize { len: pcm.len(), expected: pcm.len() + 1 });
        }
        let needed = pcm.len() / 2;
        let capacity = out.len();
        let out = out.get_mut(..needed).ok_or(CodecError::OutputTooSmall { needed, capacity })?;
        for (pair, byte) in pcm.chunks_exact(2).zip(out.iter_mut()) {
            *byte = self.encode_pair(i32::from(pair[0]), i32::from(pair[1]));
        }
        Ok(needed)
    }

    fn encode_pair(&mut self, first: i32, second: i32) -> u8 {
        // The transmit QMF: every other output of each half band.
        self.x.copy_within(2.., 0);
        self.x[22] = first;
        self.x[23] = second;
        let (mut odd, mut even) = (0, 0);
        for (i, c) in QMF.iter().enumerate() {
            odd += self.x[2 * i] * c;
            even += self.x[2 * i + 1] * QMF[11 - i];
        }
        let (xlow, xhigh) = ((even + odd) >> 14, (even - odd) >> 14);

        // The lower band: a 6-bit code.
        let el = saturate(xlow - self.low.s);
        let magnitude = if el >= 0 { el } else { -(el + 1) };
        let interval = (1..30).find(|&i| magnitude < (Q6[i] * self.low.det) >> 12).unwrap_or(30);
        let ilow = if el < 0 { ILN[interval] } else { ILP[interval] };
        let ril = (ilow >> 2) as usize;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.adapt(dlow);

        // The upper band: a 2-bit code.
        let eh = saturate(xhigh - self.high.s);
        let magnitude = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if magnitude >= (564 * self.high.det) >> 12 { 2 } else { 1 };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        let dhigh = (self.high.det * QM2[ihigh as usize]) >> 15;
        self.high.scale(WH[RH2[ihigh as usize] as usize], 22528, 10);
        self.high.adapt(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

/// Decodes G.722 at 64 kbit/s into 16 kHz PCM; no concealment of its own.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    /// The receive QMF's last 24 inputs.
    x: [i32; 24],
    low: Band,
    high: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self { x: [0; 24], low: Band::new(32), high: Band::new(8) }
    }
}

impl G722Decoder {
    fn decode_byte(&mut self, code: u8) -> [i16; 2] {
        let (ilow, ihigh) = (usize::from(code & 0x3f), usize::from(code >> 6));
        // The lower band: output from the 6-bit code, prediction from its top 4 bits.
        let rlow = (self.low.s + ((self.low.det * QM6[ilow]) >> 15)).clamp(-16384, 16383);
        let ril = ilow >> 2;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.scale(WL[RL42[ril] as usize], 18432, 8);
        self.low.adapt(dlow);
        // The upper band.
        let dhigh = (self.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.high.s).clamp(-16384, 16383);
        self.high.scale(WH[RH2[ihigh] as usize], 22528, 10);
        self.high.adapt(dhigh);
        // The receive QMF.
        self.x.copy_within(2.., 0);
        self.x[22] = rlow + rhigh;
        self.x[23] = rlow - rhigh;
        let (mut first, mut second) = (0, 0);
        for (i, c) in QMF.iter().enumerate() {
            second += self.x[2 * i] * c;
            first += self.x[2 * i + 1] * QMF[11 - i];
        }
        [saturate(first >> 11) as i16, saturate(second >> 11) as i16]
    }
}

impl AudioDecoder for G722Decoder {
    fn sample_rate(&self) -> SampleRate {
        SampleRate::HZ_16000
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.len() > pcm::MAX_PAYLOAD_BYTES {
            return Err(CodecError::Oversize { len: payload.len(), max: pcm::MAX_PAYLOAD_BYTES });
        }
        let needed = payload.len() * 2;
        let capacity = out.len();
        let out = out.get_mut(..needed).ok_or(CodecError::OutputTooSmall { needed, capacity })?;
        for (&code, pair) in payload.iter().zip(out.chunks_exact_mut(2)) {
            pair.copy_from_slice(&self.decode_byte(code));
        }
        Ok(needed)
    }

    fn conceal(&mut self, _out: &mut [i16]) -> Result<Option<usize>, CodecError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_160_bytes_and_comes_back_close() -> Result<(), CodecError> {
        let pcm: Vec<i16> = (0..640).map(|i| ((i as f32 * 0.07).sin() * 9000.0) as i16).collect();
        let (mut encoder, mut decoder) = (G722Encoder::default(), G722Decoder::default());
        let mut wire = [0u8; 320];
        let mut back = vec![0i16; 640];
        for frame in 0..2 {
            let len = encoder.encode(&pcm[frame * 320..(frame + 1) * 320], &mut wire)?;
            assert_eq!(len, 160);
            assert_eq!(decoder.decode(&wire[..len], &mut back[frame * 320..])?, 320);
        }
        // Past the codec's delay (its filters', a few samples) the tone is kept.
        let correlation = |lag: usize| {
            let (a, b): (Vec<f64>, Vec<f64>) =
                (400..640).map(|i| (f64::from(back[i]), f64::from(pcm[i - lag]))).unzip();
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / (norm(&a) * norm(&b))
        };
        let best = (0..64).map(correlation).fold(f64::MIN, f64::max);
        assert!(best > 0.95, "correlation {best:.3}");
        Ok(())
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut out = [0i16; 4];
        assert!(G722Decoder::default().decode(&[1, 2, 3], &mut out).is_err(), "too short an output");
        assert!(G722Decoder::default().decode(&[0; 2000], &mut [0i16; 4000]).is_err(), "oversize");
        assert!(G722Encoder::default().encode(&[0; 3], &mut [0u8; 4]).is_err(), "odd samples");
        assert!(G722Encoder::default().encode(&[0; 320], &mut [0u8; 100]).is_err(), "short output");
    }
}
