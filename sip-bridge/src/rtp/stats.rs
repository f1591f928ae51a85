//! What a receiver tells the sender about its stream in RTCP (RFC 3550
//! §6.4.1, Appendix A.3): extended highest sequence number, cumulative
//! and fractional loss, and the last sender report's time for round-trip
//! measurement. Pure; time passed in.

use std::time::Instant;

use super::rtcp::ReportBlock;

/// Reception statistics of one source.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    ssrc: u32,
    started: bool,
    base_seq: u32,
    /// Extended highest sequence number (cycles << 16 | seq).
    max_ext: u32,
    received: u32,
    /// At the previous report.
    expected_prior: u32,
    received_prior: u32,
    /// Middle 32 bits of the last SR's NTP time, and when it came.
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Counts a packet from `ssrc` with sequence number `seq`.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16) {
        let seq = u32::from(seq);
        if !self.started || ssrc != self.ssrc {
            *self = Self { ssrc, started: true, base_seq: seq, max_ext: seq, ..Self::default() };
        }
        self.received += 1;
        let cycles = self.max_ext & 0xFFFF_0000;
        let max = self.max_ext & 0xFFFF;
        // Within half the space ahead (with wrap-around) is newer.
        let delta = seq.wrapping_sub(max) & 0xFFFF;
        if delta != 0 && delta < 0x8000 {
            let wrapped = seq < max;
            self.max_ext = (if wrapped { cycles.wrapping_add(0x1_0000) } else { cycles }) | seq;
        }
    }

    /// A sender report from this source arrived at `now` with NTP time `ntp`.
    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some((((ntp >> 16) & 0xFFFF_FFFF) as u32, now));
    }

    /// The report block for now; `jitter` in timestamp units. `None`
    /// before the first packet.
    pub fn report(&mut self, now: Instant, jitter: u32) -> Option<ReportBlock> {
        if !self.started {
            return None;
        }
        let expected = self.max_ext.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = self.last_sr.map_or((0, 0), |(lsr, at)| {
            (lsr, (now.saturating_duration_since(at).as_secs_f64() * 65_536.0) as u32)
        });
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: self.max_ext,
            jitter,
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// The NTP timestamp (seconds since 1900 in the high 32 bits) of `now`.
#[must_use]
pub fn ntp_now() -> u64 {
    let since_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs() + 2_208_988_800;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_wrap_around_are_counted() {
        let mut s = ReceiverStats::default();
        let t = Instant::now();
        assert!(s.report(t, 0).is_none());
        // 65530..=65535, 0..=9 with 3 and 4 lost: 16 expected, 14 received.
        for seq in (65_530u16..=65_535).chain(0..10).filter(|&q| q != 3 && q != 4) {
            s.on_packet(7, seq);
        }
        let r = s.report(t, 80).expect("a block");
        assert_eq!((r.ssrc, r.highest_seq, r.cumulative_lost, r.jitter), (7, 0x1_0009, 2, 80));
        assert_eq!(r.fraction_lost, (2 * 256 / 16) as u8);
        // Nothing lost since: the fraction goes back to 0.
        s.on_packet(7, 10);
        assert_eq!(s.report(t, 0).expect("block").fraction_lost, 0);
    }

    #[test]
    fn a_late_reordered_packet_does_not_move_the_highest_back() {
        let mut s = ReceiverStats::default();
        for seq in [10u16, 12, 11] {
            s.on_packet(1, seq);
        }
        assert_eq!(s.report(Instant::now(), 0).expect("block").highest_seq, 12);
    }

    #[test]
    fn the_last_sender_report_is_echoed_with_the_delay_since() {
        let mut s = ReceiverStats::default();
        let t = Instant::now();
        s.on_packet(1, 1);
        s.on_sender_report(0x1234_5678_9ABC_DEF0, t);
        let r = s.report(t + std::time::Duration::from_millis(500), 0).expect("block");
        assert_eq!(r.last_sr, 0x5678_9ABC);
        assert_eq!(r.delay_since_last_sr, 32_768);
    }
}
