//! RTCP sender and receiver reports (RFC 3550 §6.4) and BYE: what a voice
//! call sends every few seconds and reads from its peer (loss, jitter,
//! round-trip time).

use super::RtpError;

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost in total (24 bits, signed).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A report: SR when `sender` is set, else RR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ssrc: u32,
    pub sender: Option<SenderInfo>,
    pub blocks: Vec<ReportBlock>,
}

const SR: u8 = 200;
const RR: u8 = 201;
const BYE: u8 = 203;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Report {
    /// Writes the report, followed by a BYE if `bye`; returns the length.
    ///
    /// # Errors
    /// `out` is too small.
    pub fn write(&self, bye: bool, out: &mut [u8]) -> Result<usize, RtpError> {
        let blocks = self.blocks.len().min(31);
        let len = 8 + if self.sender.is_some() { 20 } else { 0 } + 24 * blocks;
        let total = len + if bye { 8 } else { 0 };
        let out = out.get_mut(..total).ok_or(RtpError::Buffer)?;
        out[0] = 0x80 | blocks as u8;
        out[1] = if self.sender.is_some() { SR } else { RR };
        out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut at = 8;
        if let Some(s) = self.sender {
            out[at..at + 8].copy_from_slice(&s.ntp.to_be_bytes());
            out[at + 8..at + 12].copy_from_slice(&s.rtp_timestamp.to_be_bytes());
            out[at + 12..at + 16].copy_from_slice(&s.packets.to_be_bytes());
            out[at + 16..at + 20].copy_from_slice(&s.octets.to_be_bytes());
            at += 20;
        }
        for b in &self.blocks[..blocks] {
            out[at..at + 4].copy_from_slice(&b.ssrc.to_be_bytes());
            let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0xFF_FFFF;
            out[at + 4..at + 8].copy_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
            out[at + 8..at + 12].copy_from_slice(&b.highest_seq.to_be_bytes());
            out[at + 12..at + 16].copy_from_slice(&b.jitter.to_be_bytes());
            out[at + 16..at + 20].copy_from_slice(&b.last_sr.to_be_bytes());
            out[at + 20..at + 24].copy_from_slice(&b.delay_since_last_sr.to_be_bytes());
            at += 24;
        }
        if bye {
            out[at] = 0x81;
            out[at + 1] = BYE;
            out[at + 2..at + 4].copy_from_slice(&1u16.to_be_bytes());
            out[at + 4..at + 8].copy_from_slice(&self.ssrc.to_be_bytes());
        }
        Ok(total)
    }
}

/// What a compound RTCP packet said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    pub reports: Vec<Report>,
    /// SSRCs that said BYE.
    pub byes: Vec<u32>,
}

/// Parses a compound RTCP packet; unknown packet types are skipped.
///
/// # Errors
/// A length that runs past the datagram, or not version 2.
pub fn parse(bytes: &[u8]) -> Result<Received, RtpError> {
    let mut out = Received::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtpError::Short);
        }
        if rest[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let count = usize::from(rest[0] & 0x1f);
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let packet = rest.get(..len).ok_or(RtpError::Short)?;
        match packet[1] {
            SR | RR if packet.len() >= 8 => {
                let ssrc = be32(&packet[4..]);
                let (sender, mut at) = if packet[1] == SR {
                    let s = packet.get(8..28).ok_or(RtpError::Short)?;
                    let ntp = (u64::from(be32(s)) << 32) | u64::from(be32(&s[4..]));
                    (
                        Some(SenderInfo {
                            ntp,
                            rtp_timestamp: be32(&s[8..]),
                            packets: be32(&s[12..]),
                            octets: be32(&s[16..]),
                        }),
                        28,
                    )
                } else {
                    (None, 8)
                };
                let mut blocks = Vec::with_capacity(count);
                for _ in 0..count {
                    let b = packet.get(at..at + 24).ok_or(RtpError::Short)?;
                    let word = be32(&b[4..]);
                    // Sign-extend the 24-bit cumulative loss.
                    let lost = ((word << 8) as i32) >> 8;
                    blocks.push(ReportBlock {
                        ssrc: be32(b),
                        fraction_lost: (word >> 24) as u8,
                        cumulative_lost: lost,
                        highest_seq: be32(&b[8..]),
                        jitter: be32(&b[12..]),
                        last_sr: be32(&b[16..]),
                        delay_since_last_sr: be32(&b[20..]),
                    });
                    at += 24;
                }
                out.reports.push(Report { ssrc, sender, blocks });
            }
            BYE => {
                for i in 0..count {
                    out.byes.push(be32(packet.get(4 + 4 * i..8 + 4 * i).ok_or(RtpError::Short)?));
                }
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_and_receiver_reports_round_trip_with_a_bye() {
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 120,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65_536,
        };
        let sr = Report {
            ssrc: 7,
            sender: Some(SenderInfo { ntp: 1 << 40, rtp_timestamp: 160, packets: 50, octets: 8000 }),
            blocks: vec![block],
        };
        let mut buf = [0u8; 128];
        let n = sr.write(true, &mut buf).expect("fits");
        assert!(super::super::is_rtcp(&buf[..n]));
        let got = parse(&buf[..n]).expect("valid");
        assert_eq!(got.reports, vec![sr]);
        assert_eq!(got.byes, vec![7]);
        let rr = Report { ssrc: 8, sender: None, blocks: vec![] };
        let n = rr.write(false, &mut buf).expect("fits");
        assert_eq!(parse(&buf[..n]).expect("valid").reports, vec![rr]);
    }

    #[test]
    fn truncated_reports_are_errors() {
        let sr =
            Report { ssrc: 7, sender: Some(SenderInfo::default()), blocks: vec![ReportBlock::default()] };
        let mut buf = [0u8; 128];
        let n = sr.write(false, &mut buf).expect("fits");
        for cut in 1..n {
            assert!(parse(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
