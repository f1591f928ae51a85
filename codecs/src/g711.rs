//! G.711 µ-law and A-law, exactly as ITU-T G.711 specifies them.
//!
//! Encoding maps a 16-bit linear sample to the 8-bit code of the quantisation
//! interval it falls in; decoding returns the interval's midpoint, so the
//! round trip is off by at most half an interval. µ-law works on the top 14
//! bits (bias 33, i.e. 0x84 at 16 bits), A-law on the top 13 bits. Codes are
//! transmitted with the standard's bit inversions (µ-law: all bits; A-law:
//! even bits, `0x55`).

use crate::CodecError;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Encodes one linear sample to a µ-law code.
#[inline]
#[must_use]
pub fn ulaw_encode(sample: i16) -> u8 {
    let (magnitude, mask) = if sample < 0 { (-(sample as i32), 0x7F) } else { (sample as i32, 0xFF) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // `biased` is in 0x84..=0x7FFF, so its top bit is bit 7..=14: segment 0..=7.
    let segment = 24 - (biased as u32).leading_zeros();
    let mantissa = (biased >> (segment + 3)) & 0x0F;
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let code = !code;
    let magnitude = ((((code & 0x0F) as i32) << 3) + ULAW_BIAS) << ((code & 0x70) >> 4);
    if code & 0x80 != 0 { (ULAW_BIAS - magnitude) as i16 } else { (magnitude - ULAW_BIAS) as i16 }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let code = code ^ 0x55;
    let mut magnitude = ((code & 0x0F) as i32) << 4;
    let segment = (code & 0x70) >> 4;
    magnitude += if segment == 0 { 8 } else { 0x108 };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    if code & 0x80 != 0 { magnitude as i16 } else { -magnitude as i16 }
}

static ULAW_TABLE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_decode_const(code as u8);
        code += 1;
    }
    table
};

static ALAW_TABLE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_decode_const(code as u8);
        code += 1;
    }
    table
};

/// Decodes one µ-law code to a linear sample.
#[inline]
#[must_use]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Encodes one linear sample to an A-law code.
#[inline]
#[must_use]
pub fn alaw_encode(sample: i16) -> u8 {
    // 13-bit magnitude; negative values are one's-complemented as in G.711.
    let thirteen = (sample as i32) >> 3;
    let (magnitude, mask) = if thirteen >= 0 { (thirteen, 0xD5) } else { (-thirteen - 1, 0x55) };
    // `magnitude` is in 0..=4095: segment 0 below 32, then one per bit.
    let bits = 32 - (magnitude as u32).leading_zeros();
    let segment = bits.saturating_sub(5);
    let shift = if segment < 2 { 1 } else { segment };
    let mantissa = (magnitude >> shift) & 0x0F;
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

/// Decodes one A-law code to a linear sample.
#[inline]
#[must_use]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// Which of the two G.711 companding laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// PCMU, RTP payload type 0 (North America, Japan).
    Ulaw,
    /// PCMA, RTP payload type 8 (most of the rest of the world).
    Alaw,
}

impl G711Law {
    /// Encodes `pcm` into `out`, one byte per sample; returns the bytes written.
    ///
    /// # Errors
    /// [`CodecError::OutputTooSmall`] when `out` is shorter than `pcm`.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let out = checked_out(out, pcm.len())?;
        match self {
            Self::Ulaw => out.iter_mut().zip(pcm).for_each(|(o, &s)| *o = ulaw_encode(s)),
            Self::Alaw => out.iter_mut().zip(pcm).for_each(|(o, &s)| *o = alaw_encode(s)),
        }
        Ok(pcm.len())
    }

    /// Decodes `payload` into `out`, one sample per byte; returns the samples written.
    ///
    /// Every byte is a valid G.711 code, so only a short `out` is an error.
    ///
    /// # Errors
    /// [`CodecError::OutputTooSmall`] when `out` is shorter than `payload`.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let out = checked_out(out, payload.len())?;
        let table = match self {
            Self::Ulaw => &ULAW_TABLE,
            Self::Alaw => &ALAW_TABLE,
        };
        out.iter_mut().zip(payload).for_each(|(o, &c)| *o = table[c as usize]);
        Ok(payload.len())
    }
}

fn checked_out<T>(out: &mut [T], needed: usize) -> Result<&mut [T], CodecError> {
    let capacity = out.len();
    out.get_mut(..needed).ok_or(CodecError::OutputTooSmall { needed, capacity })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half the width of the quantisation interval that `code` stands for,
    /// in 16-bit units; the reconstruction is the interval's midpoint.
    fn ulaw_half_step(code: u8) -> i32 {
        let segment = ((!code & 0x70) >> 4) as i32;
        4 << segment
    }

    fn alaw_half_step(code: u8) -> i32 {
        let segment = (((code ^ 0x55) & 0x70) >> 4) as i32;
        if segment == 0 { 8 } else { 4 << segment }
    }

    #[test]
    fn every_ulaw_code_round_trips() {
        for code in 0..=255u8 {
            let again = ulaw_encode(ulaw_decode(code));
            // 0x7F is "negative zero": it decodes to 0, which encodes as +0 (0xFF).
            if code == 0x7F {
                assert_eq!(again, 0xFF);
            } else {
                assert_eq!(again, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn every_alaw_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn every_linear_input_stays_within_half_a_ulaw_step() {
        let max = i32::from(ulaw_decode(0x80));
        for x in i16::MIN..=i16::MAX {
            let code = ulaw_encode(x);
            let y = i32::from(ulaw_decode(code));
            let x = i32::from(x);
            if x.abs() > ULAW_CLIP {
                // Beyond the clip level the code is the outermost one.
                assert_eq!(y.abs(), max, "x {x}");
            } else {
                assert!((y - x).abs() <= ulaw_half_step(code), "x {x} -> {y}");
            }
        }
    }

    #[test]
    fn every_linear_input_stays_within_half_an_alaw_step() {
        for x in i16::MIN..=i16::MAX {
            let code = alaw_encode(x);
            let y = i32::from(alaw_decode(code));
            let x = i32::from(x);
            assert!((y - x).abs() <= alaw_half_step(code), "x {x} -> {y}");
        }
    }

    #[test]
    fn spot_values_match_the_g711_tables() {
        // µ-law: +0 and -0, the extremes, and the first step (ITU-T G.711 table 2).
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0xEF), 132);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        // A-law: the smallest levels, the extremes (table 1a/1b).
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_refuses_a_short_output() {
        let mut out = [0i16; 2];
        assert!(matches!(
            G711Law::Ulaw.decode(&[1, 2, 3], &mut out),
            Err(CodecError::OutputTooSmall { needed: 3, capacity: 2 })
        ));
    }
}
