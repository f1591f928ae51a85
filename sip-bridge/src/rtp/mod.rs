//! RTP (RFC 3550) packets and the RTCP reports a voice call needs
//! (sender and receiver reports, BYE), parsed and built without
//! allocation on the media path. Pure.

pub mod endpoint;
pub mod peer;
pub mod rtcp;
pub mod srtp;
pub mod stats;

/// A packet that is not valid RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("shorter than its header")]
    Short,
    #[error("not RTP version 2")]
    Version,
    #[error("padding longer than the payload")]
    Padding,
    #[error("the output buffer is too small")]
    Buffer,
}

/// A parsed RTP packet borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// True if `bytes` looks like RTCP rather than RTP (RFC 5761 §4: payload
/// types 64-95 with the marker bit are RTCP packet types 192-223).
#[must_use]
pub fn is_rtcp(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && (192..=223).contains(&bytes[1])
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram.
    ///
    /// # Errors
    /// Too short, not version 2, or inconsistent padding / extension / CSRC lengths.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RtpError> {
        if bytes.len() < 12 {
            return Err(RtpError::Short);
        }
        if bytes[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let padding = bytes[0] & 0x20 != 0;
        let extension = bytes[0] & 0x10 != 0;
        let csrcs = usize::from(bytes[0] & 0x0f);
        let mut start = 12 + 4 * csrcs;
        if extension {
            let ext = bytes.get(start..start + 4).ok_or(RtpError::Short)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        }
        let mut end = bytes.len();
        if start > end {
            return Err(RtpError::Short);
        }
        if padding {
            let pad = usize::from(bytes[end - 1]);
            if pad == 0 || pad > end - start {
                return Err(RtpError::Padding);
            }
            end -= pad;
        }
        Ok(Self {
            marker: bytes[1] & 0x80 != 0,
            payload_type: bytes[1] & 0x7f,
            seq: u16::from_be_bytes([bytes[2], bytes[3]]),
            timestamp: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            ssrc: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            payload: &bytes[start..end],
        })
    }

    /// Writes the packet into `out`; returns its length.
    ///
    /// # Errors
    /// `out` is too small.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        let len = 12 + self.payload.len();
        let out = out.get_mut(..len).ok_or(RtpError::Buffer)?;
        out[0] = 0x80;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.seq.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        out[12..].copy_from_slice(self.payload);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip() {
        let p = RtpPacket {
            marker: true,
            payload_type: 0,
            seq: 65_535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 7,
            payload: &[1, 2, 3],
        };
        let mut buf = [0u8; 64];
        let n = p.write(&mut buf).expect("fits");
        assert_eq!(RtpPacket::parse(&buf[..n]), Ok(p));
        assert_eq!(p.write(&mut [0u8; 14]), Err(RtpError::Buffer));
    }

    #[test]
    fn csrcs_extensions_and_padding_are_skipped() {
        let mut b = vec![0x80 | 0x20 | 0x10 | 0x01, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        b.extend_from_slice(&[0, 0, 0, 42]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // one-word extension
        b.extend_from_slice(&[0xAA, 0xBB]); // payload
        b.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = RtpPacket::parse(&b).expect("valid");
        assert_eq!((p.payload_type, p.payload), (8, &[0xAA, 0xBB][..]));
    }

    #[test]
    fn bad_packets_are_errors_not_panics() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Short));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version));
        let mut padded = vec![0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        assert_eq!(RtpPacket::parse(&padded), Err(RtpError::Padding));
        padded[0] = 0x8F; // 15 CSRCs that are not there
        assert_eq!(RtpPacket::parse(&padded), Err(RtpError::Short));
        for len in 0..40 {
            for first in [0x80u8, 0x90, 0xA0, 0xBF] {
                let mut b = vec![0xFFu8; len];
                if let Some(f) = b.first_mut() {
                    *f = first;
                }
                let _ = RtpPacket::parse(&b);
            }
        }
        assert!(is_rtcp(&[0x80, 200]) && !is_rtcp(&[0x80, 0]));
    }
}
