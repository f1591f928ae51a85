//! One load-test caller, sans-IO: what it sends every 20 ms and what it
//! makes of the agent's packets. Times are milliseconds on the load
//! generator's clock.
//!
//! The caller waits out the greeting, asks a question and times the
//! answer; on every other round it talks over the answer a second in and
//! times how long the agent takes to stop. Round after round until hung up.
//! From the agent's RTP it also measures egress pacing: each frame's
//! lateness against its RTP timestamp within a talkspurt, loss, and
//! talkspurts that start without the marker bit and a fresh timestamp.

use voxgate_codecs::g711::{ulaw_decode, ulaw_encode};

/// 20 ms of µ-law at 8 kHz.
pub const FRAME: usize = 160;
/// µ-law silence.
const SILENCE: u8 = 0xFF;
/// A frame louder than this (mean absolute sample) is speech or tone.
const VOICED: i32 = 300;
/// Agent audio counts as over after this much quiet.
const QUIET_MS: f64 = 500.0;
/// A frame later than this behind its talkspurt's schedule is late.
pub const LATE_MS: f64 = 20.0;

/// The caller's two utterances, as µ-law frames with whether each is voiced.
#[derive(Debug, Clone)]
pub struct Lines {
    pub question: Vec<([u8; FRAME], bool)>,
    pub interruption: Vec<([u8; FRAME], bool)>,
}

impl Lines {
    /// From 8 kHz mono samples.
    #[must_use]
    pub fn new(question: &[i16], interruption: &[i16]) -> Self {
        Self { question: frames(question), interruption: frames(interruption) }
    }
}

fn frames(samples: &[i16]) -> Vec<([u8; FRAME], bool)> {
    samples
        .chunks(FRAME)
        .map(|chunk| {
            let mut f = [SILENCE; FRAME];
            for (o, s) in f.iter_mut().zip(chunk) {
                *o = ulaw_encode(*s);
            }
            (f, voiced(&f))
        })
        .collect()
}

/// Whether a µ-law frame carries sound.
#[must_use]
pub fn voiced(payload: &[u8]) -> bool {
    if payload.is_empty() {
        return false;
    }
    let sum: i32 = payload.iter().map(|&c| i32::from(ulaw_decode(c)).abs()).sum();
    sum / payload.len() as i32 > VOICED
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Until the agent has been quiet a while (the greeting, a reply).
    WaitQuiet { since: f64 },
    /// Saying a line, frame by frame.
    Speaking { interruption: bool, frame: usize },
    /// Said it: waiting for the agent's answer.
    AwaitReply { since: f64 },
    /// The agent answers; on a barge-in round the caller cuts in at `cut_at`.
    Listening { cut_at: Option<f64> },
}

/// What one call measured.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    /// Caller's last voiced frame on the wire -> the agent's first voiced frame.
    pub turn_ms: Vec<f64>,
    /// Caller's first voiced frame over the agent -> the agent's last voiced frame ends.
    pub barge_in_ms: Vec<f64>,
    /// Questions the agent never answered (10 s).
    pub unanswered: u64,
    /// Agent frames received, late (behind schedule by more than [`LATE_MS`]),
    /// and missing (sequence gaps).
    pub frames: u64,
    pub late: u64,
    pub lost: u64,
    /// Each frame's lateness behind its talkspurt's schedule, sampled.
    pub lateness_ms: Vec<f64>,
    /// Talkspurts after a pause whose first packet had no marker bit and a
    /// timestamp that did not move on with the pause (RFC 3550 §5.1).
    pub unmarked_spurts: u64,
}

/// The agent's RTP stream as received.
#[derive(Debug, Default)]
struct Stream {
    last_seq: Option<u16>,
    last_arrival: f64,
    /// Arrival minus RTP time of the talkspurt's earliest packet.
    base: Option<f64>,
    ts0: u32,
}

/// A load-test caller. See the module documentation.
#[derive(Debug)]
pub struct Caller {
    lines: std::sync::Arc<Lines>,
    phase: Phase,
    round: u64,
    /// On the wire: the caller's first voiced frame of the current line, and its last.
    first_voiced: Option<f64>,
    last_voiced: Option<f64>,
    /// The agent: its last voiced frame's arrival, and when the reply started.
    agent_voiced_at: Option<f64>,
    stream: Stream,
    /// Barge-in onset waiting for the agent to stop.
    barging: Option<f64>,
    pub measured: Measured,
}

impl Caller {
    #[must_use]
    pub fn new(lines: std::sync::Arc<Lines>, now: f64) -> Self {
        Self {
            lines,
            phase: Phase::WaitQuiet { since: now },
            round: 0,
            first_voiced: None,
            last_voiced: None,
            agent_voiced_at: None,
            stream: Stream::default(),
            barging: None,
            measured: Measured::default(),
        }
    }

    fn agent_quiet_for(&self, now: f64) -> f64 {
        self.agent_voiced_at.map_or(f64::INFINITY, |t| now - t)
    }

    /// The frame to send now (every 20 ms), and whether it is voiced.
    pub fn next_frame(&mut self, now: f64) -> ([u8; FRAME], bool) {
        self.settle(now);
        match self.phase {
            Phase::Speaking { interruption, frame } => {
                let line = if interruption { &self.lines.interruption } else { &self.lines.question };
                let out = line[frame];
                if frame + 1 == line.len() {
                    self.phase = Phase::AwaitReply { since: now };
                } else {
                    self.phase = Phase::Speaking { interruption, frame: frame + 1 };
                }
                out
            }
            _ => ([SILENCE; FRAME], false),
        }
    }

    /// A voiced frame of ours reached the wire at `at` (after impairment).
    pub fn on_wire(&mut self, at: f64) {
        if self.first_voiced.is_none() {
            self.first_voiced = Some(at);
            if matches!(self.phase, Phase::Speaking { interruption: true, .. }) {
                self.barging = Some(at);
            }
        }
        self.last_voiced = Some(at);
    }

    /// Moves the script on with the clock.
    fn settle(&mut self, now: f64) {
        if let Some(onset) = self.barging
            && self.agent_quiet_for(now) > QUIET_MS
        {
            // The agent stopped: its last frame played until +20 ms.
            if let Some(last) = self.agent_voiced_at.filter(|&t| t >= onset - 20.0) {
                self.measured.barge_in_ms.push(last + 20.0 - onset);
            }
            self.barging = None;
        }
        match self.phase {
            Phase::WaitQuiet { since } if self.agent_quiet_for(now) > QUIET_MS && now - since > 1000.0 => {
                self.speak(false);
            }
            Phase::AwaitReply { since } if now - since > 10_000.0 => {
                self.measured.unanswered += 1;
                self.phase = Phase::WaitQuiet { since: now };
            }
            Phase::Listening { cut_at: Some(t) } if now >= t => self.speak(true),
            Phase::Listening { cut_at: None } if self.agent_quiet_for(now) > QUIET_MS => {
                self.phase = Phase::WaitQuiet { since: now };
            }
            _ => {}
        }
    }

    fn speak(&mut self, interruption: bool) {
        self.first_voiced = None;
        self.last_voiced = None;
        self.phase = Phase::Speaking { interruption, frame: 0 };
    }

    /// An agent RTP packet arrived at `at`.
    pub fn on_agent_packet(&mut self, at: f64, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) {
        self.measured.frames += 1;
        let s = &mut self.stream;
        if let Some(last) = s.last_seq {
            let step = seq.wrapping_sub(last);
            if step == 0 || step > 0x8000 {
                return; // a duplicate or a late packet out of order
            }
            self.measured.lost += u64::from(step - 1);
        }
        let gap = at - s.last_arrival;
        let rtp_ms = f64::from(timestamp.wrapping_sub(s.ts0)) / 8.0;
        let new_spurt = s.base.is_none() || marker || gap > 100.0;
        if new_spurt {
            // A pause shows in the timestamp (it moves on with the clock) and
            // the marker bit; a stream that hides it defeats receivers' jitter buffers.
            if s.base.is_some() && !marker && rtp_ms - (at - s.base.unwrap_or(at)) < -60.0 {
                self.measured.unmarked_spurts += 1;
            }
            s.ts0 = timestamp;
            s.base = Some(at);
        } else if let Some(base) = s.base {
            let offset = at - rtp_ms;
            if offset < base {
                s.base = Some(offset);
            } else {
                let late = offset - base;
                if late > LATE_MS {
                    self.measured.late += 1;
                }
                if self.measured.frames.is_multiple_of(10) {
                    self.measured.lateness_ms.push(late);
                }
            }
        }
        s.last_seq = Some(seq);
        s.last_arrival = at;

        if !voiced(payload) {
            return;
        }
        self.agent_voiced_at = Some(at);
        if let Phase::AwaitReply { .. } = self.phase {
            if let Some(spoke) = self.last_voiced {
                self.measured.turn_ms.push(at - spoke);
            }
            self.round += 1;
            // Every other answer, cut in a second after it starts.
            let cut_at = (self.round % 2 == 1).then_some(at + 1000.0);
            self.phase = Phase::Listening { cut_at };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tone(ms: usize) -> Vec<i16> {
        (0..ms * 8).map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16).collect()
    }

    fn lines() -> Arc<Lines> {
        let mut q = tone(400);
        q.extend(vec![0; 1600]);
        Arc::new(Lines::new(&q, &tone(300)))
    }

    /// A simulated agent: greets for a second, answers each line after
    /// `answer_ms`, speaks 3 s, and stops `stop_ms` after the caller cuts in.
    #[test]
    fn a_conversation_is_timed() {
        let mut caller = Caller::new(lines(), 0.0);
        let voice = [ulaw_encode(8000); FRAME];
        let (mut seq, mut ts) = (0u16, 0u32);
        let mut agent_until = 1000.0;
        let mut agent_from = 0.0;
        let mut prev_voiced = false;
        let mut caller_last_voiced = f64::NAN;
        let mut caller_onset: Option<f64> = None;
        let mut marker = true;
        for tick in 0..2000 {
            let now = f64::from(tick) * 20.0;
            let (_, v) = caller.next_frame(now);
            if v {
                caller.on_wire(now);
                if !prev_voiced && now > agent_from && now < agent_until {
                    caller_onset = Some(now);
                }
                caller_last_voiced = now;
            }
            if !v && prev_voiced && now >= agent_until {
                // The caller finished a line while the agent is quiet: answer in 700 ms.
                agent_from = caller_last_voiced + 700.0;
                agent_until = agent_from + 3000.0;
            }
            if let Some(onset) = caller_onset.take() {
                agent_until = onset + 120.0; // barge-in stops it 120 ms after onset
            }
            prev_voiced = v;
            if now >= agent_from && now < agent_until {
                caller.on_agent_packet(now + 2.0, seq, ts, marker, &voice);
                marker = false;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            } else {
                marker = true;
                ts = ts.wrapping_add(160);
            }
        }
        let m = &caller.measured;
        assert!(m.turn_ms.len() >= 4, "{m:?}");
        assert!(m.turn_ms.iter().all(|&t| (t - 702.0).abs() < 25.0), "{:?}", m.turn_ms);
        assert!(!m.barge_in_ms.is_empty(), "{m:?}");
        assert!(m.barge_in_ms.iter().all(|&t| (t - 120.0).abs() <= 22.0), "{:?}", m.barge_in_ms);
        assert_eq!((m.late, m.lost, m.unmarked_spurts, m.unanswered), (0, 0, 0, 0));
    }

    #[test]
    fn late_lost_and_unmarked_packets_are_counted() {
        let mut caller = Caller::new(lines(), 0.0);
        let voice = [ulaw_encode(8000); FRAME];
        // A talkspurt of 10 frames, the 5th lost and the 7th 45 ms late.
        for i in 0..10u16 {
            let at = f64::from(i) * 20.0 + if i == 6 { 45.0 } else { 0.0 };
            if i != 4 {
                caller.on_agent_packet(at, i, u32::from(i) * 160, i == 0, &voice);
            }
        }
        // A second talkspurt a second later: no marker, timestamp carried on.
        caller.on_agent_packet(1200.0, 10, 1600, false, &voice);
        let m = &caller.measured;
        assert_eq!((m.frames, m.lost, m.late, m.unmarked_spurts), (10, 1, 1, 1));
    }
}
