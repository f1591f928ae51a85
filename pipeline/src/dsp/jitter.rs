//! Adaptive jitter buffer for 20 ms RTP audio packets.
//!
//! Pull-based and free of IO: the network side calls
//! [`JitterBuffer::handle_packet`] as packets arrive, the playout clock calls
//! [`JitterBuffer::poll_frame`] once every 20 ms, and both pass the current
//! time in. It
//!
//! - reorders by RTP sequence number (extended past 65535 -> 0), drops
//!   duplicates, and drops packets whose playout time has passed (late);
//! - resets on an SSRC change or a sequence jump larger than its window;
//! - starts (and restarts after running dry, e.g. at a marker bit after
//!   silence) one target delay after the first packet arrived;
//! - adapts that target: it measures each packet's transit time relative to
//!   the fastest packet of the last few seconds, keeps a peak of that which
//!   decays with a half-life of about 3 s, and aims at one frame plus the
//!   peak, clamped to `[min_delay, max_delay]`; when it holds clearly more
//!   than the target for a while it drops a frame to shrink back;
//! - reports lost packets to the caller for concealment (the codec's PLC,
//!   or a fade-out then comfort noise, see [`super::conceal`]).

use std::time::Instant;

/// The largest payload held (an Ethernet MTU less IP/UDP/RTP headers).
pub const MAX_PAYLOAD: usize = 1460;

/// How the buffer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the payload (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Audio per packet, in milliseconds.
    pub frame_ms: u32,
    /// Target delay before any jitter has been measured.
    pub start_delay_ms: u32,
    /// The target never goes below this.
    pub min_delay_ms: u32,
    /// The target never goes above this.
    pub max_delay_ms: u32,
    /// Packets held at most; also how far ahead a packet may be before the
    /// stream counts as restarted.
    pub capacity: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            frame_ms: 20,
            start_delay_ms: 60,
            min_delay_ms: 40,
            max_delay_ms: 400,
            capacity: 64,
        }
    }
}

/// One received RTP packet, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Marker bit: the first packet of a talkspurt.
    pub marker: bool,
    /// The codec payload.
    pub payload: &'a [u8],
}

/// What happened to a packet given to [`JitterBuffer::handle_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketFate {
    /// Held for playout.
    Buffered,
    /// Already held, or already played: dropped.
    Duplicate,
    /// Arrived after its playout time: dropped.
    Late,
    /// Payload larger than [`MAX_PAYLOAD`]: dropped.
    Oversize,
    /// A new SSRC or a sequence jump: the buffer restarted with this packet.
    Restarted,
}

/// What to play for the next 20 ms.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Decode this packet.
    Frame {
        /// Extended sequence number.
        seq: u64,
        /// The codec payload.
        payload: &'a [u8],
    },
    /// A packet is missing: conceal one frame. `next` is the following
    /// packet's payload when it is already here (for Opus in-band FEC).
    Conceal {
        /// The missing packet, or `None` when the buffer ran dry.
        lost_seq: Option<u64>,
        /// The payload after the missing one, if held.
        next: Option<&'a [u8]>,
    },
    /// Nothing is playing yet (start-up or between talkspurts before the
    /// first packet): play silence or comfort noise.
    Idle,
}

/// Counters and the current delays.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets that came after their playout time.
    pub late: u64,
    /// Packets never received by their playout time.
    pub lost: u64,
    /// Frames concealed (lost packets and running dry mid-stream).
    pub concealed: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets dropped for being oversize.
    pub oversize: u64,
    /// Frames dropped on purpose to bring the delay down to target.
    pub dropped_to_shrink: u64,
    /// Restarts for a new SSRC or a sequence jump.
    pub restarts: u64,
    /// Audio held ahead of playout now, in milliseconds.
    pub current_delay_ms: u32,
    /// The delay the buffer aims at now.
    pub target_delay_ms: u32,
    /// Interarrival jitter as RFC 3550 §6.4.1 defines it, in milliseconds.
    pub jitter_ms: f64,
}

#[derive(Debug)]
struct Slot {
    /// Extended sequence number held here, if any.
    seq: Option<u64>,
    payload: Vec<u8>,
}

/// Transit-time history for the adaptive target: the fastest packet of the
/// last `TRANSIT_WINDOW` defines "no extra delay".
const TRANSIT_WINDOW: usize = 128;
/// Per-packet decay of the delay peak: a half-life of about 140 packets (2.8 s).
const PEAK_DECAY: f64 = 0.995;
/// Polls above target before a frame is dropped to shrink.
const SHRINK_AFTER_POLLS: u32 = 25;

#[derive(Debug)]
struct DelayEstimator {
    /// Arrival time of the first packet: the zero of `transit` values.
    epoch: Option<Instant>,
    transits: [f64; TRANSIT_WINDOW],
    filled: usize,
    next: usize,
    peak_ms: f64,
    /// RFC 3550 interarrival jitter, in ms.
    jitter_ms: f64,
    last_transit: Option<f64>,
    /// Extended RTP timestamp of the last packet, and its raw value.
    ext_ts: i64,
    last_ts: Option<u32>,
}

impl DelayEstimator {
    fn new(initial_peak_ms: f64) -> Self {
        Self {
            epoch: None,
            transits: [0.0; TRANSIT_WINDOW],
            filled: 0,
            next: 0,
            peak_ms: initial_peak_ms,
            jitter_ms: 0.0,
            last_transit: None,
            ext_ts: 0,
            last_ts: None,
        }
    }

    fn observe(&mut self, now: Instant, timestamp: u32, clock_rate: u32) {
        // Extend the timestamp through wrap-around by its signed difference.
        if let Some(last) = self.last_ts {
            self.ext_ts += i64::from(timestamp.wrapping_sub(last) as i32);
        }
        self.last_ts = Some(timestamp);
        let epoch = *self.epoch.get_or_insert(now);
        let arrival_ms = now.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        let transit = arrival_ms - self.ext_ts as f64 * 1000.0 / f64::from(clock_rate);

        if let Some(last) = self.last_transit {
            self.jitter_ms += ((transit - last).abs() - self.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);

        self.transits[self.next] = transit;
        self.next = (self.next + 1) % TRANSIT_WINDOW;
        self.filled = (self.filled + 1).min(TRANSIT_WINDOW);
        let fastest = self.transits[..self.filled].iter().copied().fold(f64::INFINITY, f64::min);
        let relative = transit - fastest;
        self.peak_ms = (self.peak_ms * PEAK_DECAY).max(relative);
    }
}

/// The adaptive jitter buffer. See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Vec<Slot>,
    ssrc: Option<u32>,
    /// Highest extended sequence number received.
    highest: Option<u64>,
    /// Next sequence number to play; `None` before the first packet.
    next_play: Option<u64>,
    playing: bool,
    /// A frame has been played since the last restart, so running dry is a
    /// gap to conceal rather than the start of the stream.
    has_played: bool,
    /// Arrival of the first packet held while buffering.
    buffering_since: Option<Instant>,
    polls_above_target: u32,
    estimator: DelayEstimator,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Builds an empty buffer.
    #[must_use]
    pub fn new(config: JitterConfig) -> Self {
        let capacity = config.capacity.max(4);
        let slots =
            (0..capacity).map(|_| Slot { seq: None, payload: Vec::with_capacity(MAX_PAYLOAD) }).collect();
        let initial_peak = f64::from(config.start_delay_ms.saturating_sub(config.frame_ms));
        let mut buffer = Self {
            config: JitterConfig { capacity, ..config },
            slots,
            ssrc: None,
            highest: None,
            next_play: None,
            playing: false,
            has_played: false,
            buffering_since: None,
            polls_above_target: 0,
            estimator: DelayEstimator::new(initial_peak),
            stats: JitterStats::default(),
        };
        buffer.stats.target_delay_ms = buffer.target_delay_ms();
        buffer
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Counters and delays.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            current_delay_ms: self.held_frames() as u32 * self.config.frame_ms,
            target_delay_ms: self.target_delay_ms(),
            jitter_ms: self.estimator.jitter_ms,
            ..self.stats
        }
    }

    /// The delay the buffer aims at now, a whole number of frames.
    #[must_use]
    pub fn target_delay_ms(&self) -> u32 {
        let c = &self.config;
        let wanted = f64::from(c.frame_ms) + self.estimator.peak_ms;
        let frames = (wanted / f64::from(c.frame_ms)).ceil() as u32;
        (frames * c.frame_ms).clamp(c.min_delay_ms, c.max_delay_ms)
    }

    fn target_frames(&self) -> u64 {
        u64::from(self.target_delay_ms().div_ceil(self.config.frame_ms))
    }

    /// Frames from the playout point to the newest packet held.
    fn held_frames(&self) -> u64 {
        match (self.highest, self.next_play) {
            (Some(h), Some(n)) if h >= n => h - n + 1,
            _ => 0,
        }
    }

    fn slot_index(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    fn holds(&self, seq: u64) -> bool {
        self.slots[self.slot_index(seq)].seq == Some(seq)
    }

    /// Extends a 16-bit sequence number to the one nearest the highest seen.
    fn extend_seq(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start well above zero so that a reordered packet just before the
            // first one does not underflow.
            return (1 << 32) + u64::from(seq);
        };
        let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
        highest.wrapping_add_signed(delta)
    }

    fn restart(&mut self) {
        for slot in &mut self.slots {
            slot.seq = None;
        }
        self.highest = None;
        self.next_play = None;
        self.playing = false;
        self.has_played = false;
        self.buffering_since = None;
        self.polls_above_target = 0;
        let initial_peak = f64::from(self.config.start_delay_ms.saturating_sub(self.config.frame_ms));
        self.estimator = DelayEstimator::new(initial_peak);
    }

    /// Takes one arriving packet.
    pub fn handle_packet(&mut self, now: Instant, packet: RtpPacket<'_>) -> PacketFate {
        if packet.payload.len() > MAX_PAYLOAD {
            self.stats.oversize += 1;
            return PacketFate::Oversize;
        }
        let mut fate = PacketFate::Buffered;
        if self.ssrc.is_some_and(|s| s != packet.ssrc) {
            self.restart();
            self.stats.restarts += 1;
            fate = PacketFate::Restarted;
        }
        self.ssrc = Some(packet.ssrc);

        let mut seq = self.extend_seq(packet.seq);
        let window = self.slots.len() as u64;
        let base = self.next_play.or(self.highest);
        if base.is_some_and(|b| seq >= b + window) {
            // Too far ahead to hold: the sender restarted its sequence.
            self.restart();
            self.stats.restarts += 1;
            fate = PacketFate::Restarted;
            seq = self.extend_seq(packet.seq);
        }
        if let Some(next) = self.next_play.filter(|&n| self.has_played && seq < n) {
            // Its turn has passed: a duplicate if it was played, else late.
            let played = next - seq < window && self.slots[self.slot_index(seq)].seq == Some(seq);
            if played {
                self.stats.duplicates += 1;
                return PacketFate::Duplicate;
            }
            self.stats.late += 1;
            return PacketFate::Late;
        }
        if self.holds(seq) {
            self.stats.duplicates += 1;
            return PacketFate::Duplicate;
        }

        let index = self.slot_index(seq);
        let slot = &mut self.slots[index];
        slot.seq = Some(seq);
        slot.payload.clear();
        slot.payload.extend_from_slice(packet.payload);
        self.stats.received += 1;
        self.estimator.observe(now, packet.timestamp, self.config.clock_rate);

        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        match self.next_play {
            None => self.next_play = Some(seq),
            // Before playout starts, an earlier packet moves the start back.
            Some(next) if !self.has_played && seq < next => {
                self.next_play = Some(seq);
            }
            Some(_) => {}
        }
        if !self.playing && self.buffering_since.is_none() {
            self.buffering_since = Some(now);
        }
        // A marker after running dry starts a talkspurt: play from it.
        if packet.marker && !self.playing && self.next_play.is_some_and(|n| !self.holds(n) && n < seq) {
            self.skip_to(seq);
        }
        fate
    }

    /// Moves the playout point to `seq`, forgetting anything before it.
    fn skip_to(&mut self, seq: u64) {
        if let Some(mut next) = self.next_play {
            while next < seq {
                let index = self.slot_index(next);
                if self.slots[index].seq == Some(next) {
                    self.slots[index].seq = None;
                }
                next += 1;
            }
        }
        self.next_play = Some(seq);
    }

    /// What to play for the next frame; call once per frame period.
    pub fn poll_frame(&mut self, now: Instant) -> Playout<'_> {
        let Some(next) = self.next_play else {
            return Playout::Idle;
        };
        if !self.playing {
            // The first packet held plays one target delay after it arrived,
            // so packets reordered within the target still make it.
            let ready = self.buffering_since.is_some_and(|t| {
                now.saturating_duration_since(t).as_millis() as u64 >= u64::from(self.target_delay_ms())
            });
            if !ready || self.held_frames() == 0 {
                return if self.has_played {
                    self.stats.concealed += 1;
                    Playout::Conceal { lost_seq: None, next: None }
                } else {
                    Playout::Idle
                };
            }
            self.playing = true;
            self.buffering_since = None;
            self.polls_above_target = 0;
        }

        // Shrink: well above target for a while, drop the oldest frame.
        let target = self.target_frames();
        if self.held_frames() > target + 1 {
            self.polls_above_target += 1;
            if self.polls_above_target >= SHRINK_AFTER_POLLS {
                self.polls_above_target = 0;
                self.stats.dropped_to_shrink += 1;
                self.skip_to(next + 1);
                return self.poll_playing(next + 1);
            }
        } else {
            self.polls_above_target = 0;
        }
        self.poll_playing(next)
    }

    fn poll_playing(&mut self, next: u64) -> Playout<'_> {
        let index = self.slot_index(next);
        if self.slots[index].seq == Some(next) {
            self.next_play = Some(next + 1);
            self.has_played = true;
            return Playout::Frame { seq: next, payload: &self.slots[index].payload };
        }
        if self.highest.is_some_and(|h| h > next) {
            // Missing, with later packets here: it is lost.
            self.stats.lost += 1;
            self.stats.concealed += 1;
            self.next_play = Some(next + 1);
            let after = self.slot_index(next + 1);
            let next_payload =
                (self.slots[after].seq == Some(next + 1)).then_some(self.slots[after].payload.as_slice());
            return Playout::Conceal { lost_seq: Some(next), next: next_payload };
        }
        // Ran dry: wait for the target delay again before resuming.
        self.playing = false;
        self.buffering_since = None;
        self.stats.concealed += 1;
        Playout::Conceal { lost_seq: None, next: None }
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
