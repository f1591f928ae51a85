//! The agent's audio on its way out: a queue of turns, each a run of
//! sentences with the samples that speak them. Pure; the driver calls
//! [`Egress::poll_frame`] once per 20 ms tick.
//!
//! Because egress knows which sentence every sample belongs to, it can say
//! exactly what the caller heard when a turn is cut short: whole sentences
//! played, plus the share of the words of the sentence that was playing.

use std::collections::VecDeque;

use crate::dsp::vad::FRAME_SAMPLES;
use crate::turn::{PlayoutEvent, TurnId};

/// Samples per millisecond at the canonical 16 kHz.
const SAMPLES_PER_MS: usize = 16;

/// What the caller heard of one agent turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spoken {
    /// The turn.
    pub turn: TurnId,
    /// The text heard: all of it, or up to where it was cut.
    pub text: String,
    /// Audio played, in milliseconds.
    pub played_ms: u64,
    /// False when the turn was interrupted before its end.
    pub complete: bool,
}

#[derive(Debug)]
struct Sentence {
    text: String,
    /// Sample offset of its first sample within the turn.
    start: usize,
}

#[derive(Debug)]
struct TurnAudio {
    turn: TurnId,
    sentences: Vec<Sentence>,
    pending: VecDeque<i16>,
    /// Samples ever queued, and sent.
    queued: usize,
    played: usize,
    /// No more audio will come.
    closed: bool,
}

impl TurnAudio {
    fn heard(&self, complete: bool) -> Spoken {
        let mut words: Vec<&str> = Vec::new();
        for (i, s) in self.sentences.iter().enumerate() {
            let end = self.sentences.get(i + 1).map_or(self.queued, |n| n.start);
            if self.played >= end || complete {
                words.extend(s.text.split_whitespace());
            } else if self.played > s.start {
                // Partly heard: the share of its words that its time covers.
                let all: Vec<&str> = s.text.split_whitespace().collect();
                let share = (self.played - s.start) as f64 / (end - s.start).max(1) as f64;
                let n = (all.len() as f64 * share).floor() as usize;
                words.extend(&all[..n.min(all.len())]);
            }
        }
        Spoken {
            turn: self.turn,
            text: words.join(" "),
            played_ms: (self.played / SAMPLES_PER_MS) as u64,
            complete,
        }
    }
}

/// The egress queue. See the module documentation.
#[derive(Debug, Default)]
pub struct Egress {
    turns: VecDeque<TurnAudio>,
    paused: bool,
    events: VecDeque<EgressEvent>,
}

/// What egress reports besides frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressEvent {
    /// Playout progress, for the turn machine.
    Playout(PlayoutEvent),
    /// A turn played to its end.
    Finished(Spoken),
}

impl Egress {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn turn_mut(&mut self, turn: TurnId) -> &mut TurnAudio {
        if let Some(i) = self.turns.iter().position(|t| t.turn == turn) {
            return &mut self.turns[i];
        }
        self.turns.push_back(TurnAudio {
            turn,
            sentences: Vec::new(),
            pending: VecDeque::new(),
            queued: 0,
            played: 0,
            closed: false,
        });
        // Infallible: just pushed.
        self.turns.back_mut().expect("just pushed")
    }

    /// Reserves `turn`'s place in the queue (in the order turns are asked for).
    pub fn open(&mut self, turn: TurnId) {
        self.turn_mut(turn);
    }

    /// The samples that follow speak `text`.
    pub fn begin_sentence(&mut self, turn: TurnId, text: String) {
        let t = self.turn_mut(turn);
        if !t.closed {
            let start = t.queued;
            t.sentences.push(Sentence { text, start });
        }
    }

    /// More of `turn`'s audio, 16 kHz.
    pub fn push_audio(&mut self, turn: TurnId, samples: &[i16]) {
        let t = self.turn_mut(turn);
        if !t.closed {
            t.pending.extend(samples);
            t.queued += samples.len();
        }
    }

    /// `turn` has all its audio.
    pub fn close(&mut self, turn: TurnId) {
        self.turn_mut(turn).closed = true;
    }

    /// Stops sending (the caller may be interrupting); nothing is dropped.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Sends again from where it paused.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Drops `turn` and its audio; says what the caller heard of it.
    pub fn interrupt(&mut self, turn: TurnId) -> Option<Spoken> {
        self.paused = false;
        let i = self.turns.iter().position(|t| t.turn == turn)?;
        let t = self.turns.remove(i)?;
        Some(t.heard(false))
    }

    /// The call is over: drops everything; says what the caller heard of
    /// the line that was playing, if one was.
    pub fn cut_off(&mut self) -> Option<Spoken> {
        let front = self.turns.pop_front().filter(|t| t.played > 0);
        self.turns.clear();
        front.map(|t| t.heard(false))
    }

    /// Finishes the turns at the front that have nothing left to play
    /// (played to the end, or closed without audio), so the next can start.
    /// Call it after [`Egress::close`]; [`Egress::poll_frame`] calls it too.
    pub fn settle(&mut self) {
        while let Some(front) = self.turns.front() {
            if !(front.closed && front.pending.is_empty()) {
                break;
            }
            // Infallible: front exists.
            let done = self.turns.pop_front().expect("front exists");
            self.events.push_back(EgressEvent::Playout(PlayoutEvent::Finished { turn: done.turn }));
            self.events.push_back(EgressEvent::Finished(done.heard(true)));
        }
    }

    /// True while audio is waiting to go out (or a turn is being made).
    #[must_use]
    pub fn is_busy(&self) -> bool {
        !self.turns.is_empty()
    }

    /// True when a frame is ready to go out now.
    #[must_use]
    pub fn has_frame(&self) -> bool {
        !self.paused
            && self
                .turns
                .front()
                .is_some_and(|t| t.pending.len() >= FRAME_SAMPLES || (t.closed && !t.pending.is_empty()))
    }

    /// Writes the next 20 ms frame into `out` and returns its turn, or
    /// `None` when there is nothing to send (paused, or waiting for TTS).
    pub fn poll_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Option<TurnId> {
        self.settle();
        if !self.has_frame() {
            return None;
        }
        let t = self.turns.front_mut()?;
        let n = FRAME_SAMPLES.min(t.pending.len());
        for (o, s) in out.iter_mut().zip(t.pending.drain(..n)) {
            *o = s;
        }
        out[n..].fill(0);
        if t.played == 0 {
            self.events.push_back(EgressEvent::Playout(PlayoutEvent::Started { turn: t.turn }));
        }
        t.played += n;
        let played_ms = (t.played / SAMPLES_PER_MS) as u64;
        self.events.push_back(EgressEvent::Playout(PlayoutEvent::Progress { turn: t.turn, played_ms }));
        Some(t.turn)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EgressEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(e: &mut Egress) -> (Vec<TurnId>, Vec<EgressEvent>) {
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut frames = Vec::new();
        for _ in 0..1000 {
            if let Some(t) = e.poll_frame(&mut frame) {
                frames.push(t);
            }
        }
        (frames, std::iter::from_fn(|| e.poll_event()).collect())
    }

    #[test]
    fn a_turn_plays_in_frames_and_reports_start_progress_and_end() {
        let mut e = Egress::new();
        let t = TurnId(1);
        e.begin_sentence(t, "Hello there.".into());
        e.push_audio(t, &[1; 500]);
        e.close(t);
        let (frames, events) = drain(&mut e);
        assert_eq!(frames, vec![t, t]);
        assert_eq!(events[0], EgressEvent::Playout(PlayoutEvent::Started { turn: t }));
        assert!(events.contains(&EgressEvent::Playout(PlayoutEvent::Finished { turn: t })));
        let spoken = Spoken { turn: t, text: "Hello there.".into(), played_ms: 31, complete: true };
        assert_eq!(events.last(), Some(&EgressEvent::Finished(spoken)));
        assert!(!e.is_busy());
    }

    #[test]
    fn nothing_goes_out_until_a_whole_frame_is_there_or_the_turn_is_closed() {
        let mut e = Egress::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        e.push_audio(TurnId(1), &[1; 100]);
        assert_eq!(e.poll_frame(&mut frame), None);
        e.push_audio(TurnId(1), &[1; 220]);
        assert_eq!(e.poll_frame(&mut frame), Some(TurnId(1)));
    }

    #[test]
    fn interrupting_keeps_whole_sentences_heard_and_a_share_of_the_current_one() {
        let mut e = Egress::new();
        let t = TurnId(2);
        e.begin_sentence(t, "We open at nine.".into()); // 4 words, 10 frames
        e.push_audio(t, &[1; 3200]);
        e.begin_sentence(t, "We close at five on weekdays.".into()); // 6 words, 10 frames
        e.push_audio(t, &[1; 3200]);
        let mut frame = [0i16; FRAME_SAMPLES];
        for _ in 0..15 {
            e.poll_frame(&mut frame);
        }
        let heard = e.interrupt(t).expect("queued");
        assert_eq!(heard.text, "We open at nine. We close at");
        assert_eq!(heard.played_ms, 300);
        assert!(!heard.complete);
        assert!(!e.is_busy());
    }

    #[test]
    fn pause_holds_audio_and_resume_carries_on() {
        let mut e = Egress::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        e.push_audio(TurnId(1), &[1; 960]);
        e.close(TurnId(1));
        assert!(e.poll_frame(&mut frame).is_some());
        e.pause();
        assert_eq!(e.poll_frame(&mut frame), None);
        e.resume();
        assert!(e.poll_frame(&mut frame).is_some());
        assert!(e.poll_frame(&mut frame).is_some());
        assert_eq!(e.poll_frame(&mut frame), None);
    }

    #[test]
    fn turns_play_in_the_order_they_were_opened() {
        let mut e = Egress::new();
        e.open(TurnId(1));
        e.push_audio(TurnId(2), &[2; 320]);
        e.close(TurnId(2));
        e.push_audio(TurnId(1), &[1; 320]);
        e.close(TurnId(1));
        let (frames, _) = drain(&mut e);
        assert_eq!(frames, vec![TurnId(1), TurnId(2)]);
    }

    #[test]
    fn a_turn_closed_without_audio_does_not_hold_up_the_next() {
        let mut e = Egress::new();
        e.open(TurnId(1));
        e.push_audio(TurnId(2), &[2; 320]);
        e.close(TurnId(1));
        assert!(!e.has_frame());
        e.settle();
        assert_eq!(e.poll_event(), Some(EgressEvent::Playout(PlayoutEvent::Finished { turn: TurnId(1) })));
        assert!(e.has_frame(), "turn 2 is next");
    }

    #[test]
    fn an_empty_closed_turn_finishes_without_starting() {
        let mut e = Egress::new();
        e.close(TurnId(4));
        let (frames, events) = drain(&mut e);
        assert!(frames.is_empty());
        assert_eq!(events[0], EgressEvent::Playout(PlayoutEvent::Finished { turn: TurnId(4) }));
    }
}
