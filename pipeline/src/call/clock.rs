//! The RTP timestamp and marker bit of audio sent in talkspurts.
//!
//! The agent talks in spurts with silence between them, and nothing is sent
//! in the silence. The timestamp must still move on with the clock through
//! it (RFC 3550 §5.1), and the first packet of each spurt carries the
//! marker bit (RFC 3551 §4.1): a receiver's jitter buffer reads a pause as
//! a pause, not as a burst of very late packets. Counted in 64 bits (RTP
//! takes the low 32; WebRTC's media time the whole). Pure: the caller
//! passes the time each frame is sent.

use std::time::{Duration, Instant};

/// A pause longer than this between two frames starts a new talkspurt
/// (frames within a spurt may come a little late, in a burst).
const PAUSE: Duration = Duration::from_millis(100);

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Talkspurts {
    rate_hz: u32,
    samples_per_frame: u64,
    ts: u64,
    last: Option<Instant>,
    marker: bool,
}

impl Talkspurts {
    /// A stream whose first frame is stamped `initial` (random, RFC 3550).
    #[must_use]
    pub fn new(initial: u32, rate_hz: u32, samples_per_frame: u32) -> Self {
        let samples_per_frame = u64::from(samples_per_frame);
        Self {
            rate_hz,
            samples_per_frame,
            // One frame before `initial`, without going below zero.
            ts: u64::from(initial) + (1 << 32) - samples_per_frame,
            last: None,
            marker: true,
        }
    }

    /// Timestamp and marker bit for a frame sent at `now`.
    pub fn next(&mut self, now: Instant) -> (u64, bool) {
        let step = match self.last {
            Some(last) if now.saturating_duration_since(last) > PAUSE => {
                self.marker = true;
                let frames = (self.samples(now.saturating_duration_since(last)) + self.samples_per_frame / 2)
                    / self.samples_per_frame;
                frames * self.samples_per_frame
            }
            _ => self.samples_per_frame,
        };
        self.ts += step;
        self.last = Some(now);
        let marker = std::mem::take(&mut self.marker);
        (self.ts - (1 << 32), marker)
    }

    /// The next frame starts a talkspurt (the agent was cut off and speaks anew).
    pub fn mark(&mut self) {
        self.marker = true;
    }

    /// The timestamp that `now` corresponds to, for RTCP sender reports.
    #[must_use]
    pub fn at(&self, now: Instant) -> u64 {
        let ts = match self.last {
            Some(last) => self.ts + self.samples(now.saturating_duration_since(last)),
            None => self.ts + self.samples_per_frame,
        };
        ts - (1 << 32)
    }

    fn samples(&self, d: Duration) -> u64 {
        (d.as_micros() * u128::from(self.rate_hz) / 1_000_000) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_a_spurt_step_by_one_frame_and_a_pause_moves_the_clock_on() {
        let t0 = Instant::now();
        let mut c = Talkspurts::new(1000, 8000, 160);
        let ms = |v: u64| t0 + Duration::from_millis(v);
        assert_eq!(c.next(ms(0)), (1000, true));
        assert_eq!(c.next(ms(20)), (1160, false));
        // A frame a little late, then one in a burst: still the same spurt.
        assert_eq!(c.next(ms(65)), (1320, false));
        assert_eq!(c.next(ms(66)), (1480, false));
        // 1 s of silence: 50 frames' worth of samples later, marked.
        assert_eq!(c.next(ms(1066)), (1480 + 50 * 160, true));
        assert_eq!(c.next(ms(1086)), (1480 + 51 * 160, false));
        c.mark();
        assert!(c.next(ms(1106)).1);
        assert_eq!(c.at(ms(1206)), 1480 + 52 * 160 + 800);
    }

    #[test]
    fn a_first_timestamp_of_zero_and_the_32_bit_wrap() {
        let t0 = Instant::now();
        let mut c = Talkspurts::new(0, 48_000, 960);
        assert_eq!(c.next(t0).0, 0);
        let mut c = Talkspurts::new(u32::MAX - 100, 48_000, 960);
        c.next(t0);
        // 64 bits run on past 2^32; RTP's low 32 bits wrap.
        let ts = c.next(t0 + Duration::from_millis(20)).0;
        assert_eq!(ts, u64::from(u32::MAX) + 860);
        assert_eq!(ts as u32, 859);
    }
}
