//! L16 (RFC 3551: 16-bit signed, network byte order) and sample helpers.

use crate::CodecError;

/// The largest RTP payload Voxgate accepts: an Ethernet MTU less IP/UDP/RTP headers.
pub const MAX_PAYLOAD_BYTES: usize = 1460;

/// Writes `pcm` as big-endian L16 into `out`; returns the bytes written.
///
/// # Errors
/// [`CodecError::OutputTooSmall`] when `out` has fewer than `2 * pcm.len()` bytes.
pub fn l16_encode(pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
    write_samples(pcm, out, i16::to_be_bytes)
}

/// Writes `pcm` as 16-bit little-endian samples (websocket streams); returns the bytes written.
///
/// # Errors
/// [`CodecError::OutputTooSmall`] when `out` has fewer than `2 * pcm.len()` bytes.
pub fn le16_encode(pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
    write_samples(pcm, out, i16::to_le_bytes)
}

fn write_samples(pcm: &[i16], out: &mut [u8], bytes: fn(i16) -> [u8; 2]) -> Result<usize, CodecError> {
    let needed = pcm.len() * 2;
    let capacity = out.len();
    let out = out.get_mut(..needed).ok_or(CodecError::OutputTooSmall { needed, capacity })?;
    for (pair, sample) in out.chunks_exact_mut(2).zip(pcm) {
        pair.copy_from_slice(&bytes(*sample));
    }
    Ok(needed)
}

/// Reads big-endian L16 `payload` into `out`; returns the samples written.
///
/// # Errors
/// [`CodecError::Truncated`] for an odd byte count, [`CodecError::Oversize`]
/// past [`MAX_PAYLOAD_BYTES`], [`CodecError::OutputTooSmall`] for a short `out`.
pub fn l16_decode(payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
    if !payload.len().is_multiple_of(2) {
        return Err(CodecError::Truncated { len: payload.len(), unit: 2 });
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(CodecError::Oversize { len: payload.len(), max: MAX_PAYLOAD_BYTES });
    }
    let needed = payload.len() / 2;
    let capacity = out.len();
    let out = out.get_mut(..needed).ok_or(CodecError::OutputTooSmall { needed, capacity })?;
    for (sample, pair) in out.iter_mut().zip(payload.chunks_exact(2)) {
        *sample = i16::from_be_bytes([pair[0], pair[1]]);
    }
    Ok(needed)
}

/// Converts a sample to `f32` in -1.0..1.0.
#[inline]
#[must_use]
pub fn i16_to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32768.0
}

/// Converts an `f32` sample to `i16`, rounding and saturating.
#[inline]
#[must_use]
pub fn f32_to_i16(sample: f32) -> i16 {
    // `as` saturates for floats, and maps NaN to 0.
    (sample * 32768.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l16_is_big_endian_and_round_trips() {
        let pcm = [0x0102i16, -2, i16::MIN, i16::MAX];
        let mut wire = [0u8; 8];
        assert_eq!(l16_encode(&pcm, &mut wire).ok(), Some(8));
        assert_eq!(&wire[..4], &[0x01, 0x02, 0xFF, 0xFE]);
        let mut back = [0i16; 4];
        assert_eq!(l16_decode(&wire, &mut back).ok(), Some(4));
        assert_eq!(back, pcm);
    }

    #[test]
    fn l16_rejects_an_odd_byte_count() {
        let mut out = [0i16; 4];
        assert!(matches!(l16_decode(&[1, 2, 3], &mut out), Err(CodecError::Truncated { len: 3, unit: 2 })));
    }

    #[test]
    fn float_conversion_saturates() {
        assert_eq!(f32_to_i16(2.0), i16::MAX);
        assert_eq!(f32_to_i16(-2.0), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(f32_to_i16(i16_to_f32(-1234)), -1234);
    }
}
