//! Endpointing: turns per-frame speech probabilities into speech-start and
//! speech-end events.
//!
//! Speech starts after `min_speech_ms` of frames at or above `threshold`
//! (so a click or a cough is not a turn), and ends after `min_silence_ms` of
//! frames below `threshold - hysteresis` (so the pause between two sentences
//! is not the end of a turn). Both events carry padding so that the audio
//! handed to speech recognition keeps the soft edges of words.
//!
//! With a learned end of turn (Smart Turn), the endpointer asks at each
//! pause of `turn_check_ms` ([`EndpointEvent::TurnCheck`]) whether the
//! caller is done: a "complete" verdict ends the turn at once, an
//! "incomplete" one waits `incomplete_silence_ms` instead of
//! `min_silence_ms` (a caller reading out a number, or saying "um"). With
//! no verdict in time, `min_silence_ms` ends it as before.
//!
//! A recogniser of whole utterances (Whisper) needs most of a second after
//! the turn ends. With `transcribe_early_ms`, the endpointer says at that
//! much silence that it may start on the audio so far
//! ([`EndpointEvent::TranscribeEarly`]), before the turn is known to be
//! over; `SpeechResume` says the voice came back and the early work is stale.
//!
//! Time is the media time of each frame, passed in: the same input always
//! gives the same events.

/// How eager the endpointer is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// Probability at which a frame counts as speech.
    pub threshold: f32,
    /// Speech ends only below `threshold - hysteresis`.
    pub hysteresis: f32,
    /// Speech this long before it counts.
    pub min_speech_ms: u32,
    /// Silence this long before speech ends.
    pub min_silence_ms: u32,
    /// Silence this long within speech is reported as a pause (for
    /// barge-in, which must tell a cough from a sentence long before the
    /// turn ends).
    pub pause_ms: u32,
    /// Added before the first speech frame in `SpeechStart`.
    pub pre_padding_ms: u32,
    /// Added after the last speech frame in `SpeechEnd`.
    pub post_padding_ms: u32,
    /// Silence after which the learned end of turn is asked; 0: never.
    pub turn_check_ms: u32,
    /// Silence that ends a turn the learned model called incomplete.
    pub incomplete_silence_ms: u32,
    /// Silence after which a recogniser may transcribe early; 0: never.
    /// Below `turn_check_ms` and `min_silence_ms`, or it saves nothing.
    pub transcribe_early_ms: u32,
}

impl Default for EndpointConfig {
    /// A turn ends after 600 ms of silence: longer than the pause between
    /// two sentences of one turn (300-500 ms), short enough to feel responsive.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            hysteresis: 0.15,
            // Short, so the agent pauses within ~80 ms of a barge-in; the
            // pause is undone if no words follow, and a sound with no words
            // never becomes a turn.
            min_speech_ms: 60,
            min_silence_ms: 600,
            pause_ms: 60,
            pre_padding_ms: 200,
            post_padding_ms: 100,
            turn_check_ms: 0,
            incomplete_silence_ms: 1500,
            transcribe_early_ms: 0,
        }
    }
}

/// What the endpointer saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Speech began at `at_ms` (padding included).
    SpeechStart { at_ms: u64 },
    /// Speech ended at `at_ms` (padding included); `speech_ms` since its
    /// start; `silence_ms` of silence confirmed it.
    SpeechEnd { at_ms: u64, speech_ms: u64, silence_ms: u64 },
    /// The caller has paused since `pause` for `turn_check_ms`: ask the
    /// learned end of turn, and answer [`Endpointer::handle_turn_verdict`].
    TurnCheck { pause: u64 },
    /// The caller has been quiet `transcribe_early_ms` since `pause`: a
    /// recogniser of whole utterances may start on the audio so far. A
    /// `SpeechResume` after it makes that work stale.
    TranscribeEarly { pause: u64 },
    /// Within speech, the voice stopped at `at_ms` (no padding); speech may
    /// resume or end.
    SpeechPause { at_ms: u64 },
    /// After a pause, the voice is back at `at_ms`.
    SpeechResume { at_ms: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Silence,
    /// Speech frames seen since `since`, not yet long enough.
    Onset {
        since: u64,
    },
    Speech {
        start: u64,
    },
    /// Quiet since `since` during speech; `paused` and `early` once reported.
    Trailing {
        start: u64,
        since: u64,
        paused: bool,
        early: bool,
        verdict: Verdict,
    },
}

/// What the learned end of turn said of the current pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    NotAsked,
    Asked,
    Incomplete,
}

/// The endpointing state machine. Feed it one frame at a time.
#[derive(Debug, Clone)]
pub struct Endpointer {
    config: EndpointConfig,
    frame_ms: u32,
    state: State,
}

impl Endpointer {
    /// An endpointer for frames of `frame_ms`.
    #[must_use]
    pub fn new(config: EndpointConfig, frame_ms: u32) -> Self {
        Self { config, frame_ms, state: State::Silence }
    }

    /// True between `SpeechStart` and `SpeechEnd`.
    #[must_use]
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. } | State::Trailing { .. })
    }

    /// Takes the speech probability of the frame that starts at media time `at_ms`.
    pub fn handle_frame(&mut self, at_ms: u64, probability: f32) -> Option<EndpointEvent> {
        let c = self.config;
        let end_of_frame = at_ms + u64::from(self.frame_ms);
        let speech = probability >= c.threshold;
        let quiet = probability < c.threshold - c.hysteresis;
        match self.state {
            State::Silence if speech => {
                self.state = State::Onset { since: at_ms };
                self.confirm_onset(at_ms, end_of_frame)
            }
            State::Silence => None,
            State::Onset { .. } if quiet => {
                self.state = State::Silence;
                None
            }
            State::Onset { since } => self.confirm_onset(since, end_of_frame),
            State::Speech { start } if quiet => {
                self.state = State::Trailing {
                    start,
                    since: at_ms,
                    paused: false,
                    early: false,
                    verdict: Verdict::NotAsked,
                };
                self.confirm_end(start, at_ms, end_of_frame, Verdict::NotAsked)
            }
            State::Speech { .. } => None,
            State::Trailing { start, paused, .. } if speech => {
                self.state = State::Speech { start };
                paused.then_some(EndpointEvent::SpeechResume { at_ms })
            }
            State::Trailing { start, since, paused, early, verdict } => {
                let end = self.confirm_end(start, since, end_of_frame, verdict);
                if end.is_some() {
                    return end;
                }
                // At most one report per frame, in the order they come due.
                let silent = end_of_frame - since;
                let due = |ms: u32| ms > 0 && silent >= u64::from(ms);
                if !paused && silent >= u64::from(c.pause_ms) {
                    self.state = State::Trailing { start, since, paused: true, early, verdict };
                    return Some(EndpointEvent::SpeechPause { at_ms: since });
                }
                if !early && due(c.transcribe_early_ms) {
                    self.state = State::Trailing { start, since, paused, early: true, verdict };
                    return Some(EndpointEvent::TranscribeEarly { pause: since });
                }
                if verdict == Verdict::NotAsked && due(c.turn_check_ms) {
                    self.state = State::Trailing { start, since, paused, early, verdict: Verdict::Asked };
                    return Some(EndpointEvent::TurnCheck { pause: since });
                }
                None
            }
        }
    }

    fn confirm_onset(&mut self, since: u64, now: u64) -> Option<EndpointEvent> {
        if now - since < u64::from(self.config.min_speech_ms) {
            return None;
        }
        let start = since.saturating_sub(u64::from(self.config.pre_padding_ms));
        self.state = State::Speech { start };
        Some(EndpointEvent::SpeechStart { at_ms: start })
    }

    fn confirm_end(&mut self, start: u64, since: u64, now: u64, verdict: Verdict) -> Option<EndpointEvent> {
        let needed = match verdict {
            Verdict::Incomplete => self.config.incomplete_silence_ms,
            Verdict::NotAsked | Verdict::Asked => self.config.min_silence_ms,
        };
        if now - since < u64::from(needed) {
            return None;
        }
        self.end(start, since, now)
    }

    fn end(&mut self, start: u64, since: u64, now: u64) -> Option<EndpointEvent> {
        self.state = State::Silence;
        let end = since + u64::from(self.config.post_padding_ms);
        Some(EndpointEvent::SpeechEnd { at_ms: end, speech_ms: end - start, silence_ms: now - since })
    }

    /// The learned end of turn's answer for the pause that began at
    /// `pause`, heard at media time `now_ms` (the end of the last frame).
    /// "Complete" ends the turn now; an answer for a pause that is over
    /// (the caller went on) changes nothing.
    pub fn handle_turn_verdict(&mut self, pause: u64, complete: bool, now_ms: u64) -> Option<EndpointEvent> {
        let State::Trailing { start, since, paused, early, verdict: Verdict::Asked } = self.state else {
            return None;
        };
        if since != pause {
            return None;
        }
        if complete {
            return self.end(start, since, now_ms.max(since));
        }
        self.state = State::Trailing { start, since, paused, early, verdict: Verdict::Incomplete };
        None
    }

    /// Forgets any speech in progress.
    pub fn reset(&mut self) {
        self.state = State::Silence;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a pattern of probabilities, one per 20 ms frame.
    fn run_all(config: EndpointConfig, probabilities: &[f32]) -> Vec<EndpointEvent> {
        let mut ep = Endpointer::new(config, 20);
        probabilities.iter().enumerate().filter_map(|(i, &p)| ep.handle_frame(20 * i as u64, p)).collect()
    }

    /// Only the turn's start and end.
    fn run(config: EndpointConfig, probabilities: &[f32]) -> Vec<EndpointEvent> {
        let mut events = run_all(config, probabilities);
        events.retain(|e| matches!(e, EndpointEvent::SpeechStart { .. } | EndpointEvent::SpeechEnd { .. }));
        events
    }

    fn pattern(parts: &[(f32, usize)]) -> Vec<f32> {
        parts.iter().flat_map(|&(p, n)| std::iter::repeat_n(p, n)).collect()
    }

    #[test]
    fn a_turn_starts_after_min_speech_and_ends_after_min_silence() {
        // 0.5 s silence, 1 s speech, 1 s silence.
        let events = run(EndpointConfig::default(), &pattern(&[(0.0, 25), (0.9, 50), (0.0, 50)]));
        assert_eq!(
            events,
            [
                EndpointEvent::SpeechStart { at_ms: 300 },
                EndpointEvent::SpeechEnd { at_ms: 1600, speech_ms: 1300, silence_ms: 600 },
            ]
        );
    }

    #[test]
    fn pauses_within_speech_are_reported_as_they_happen() {
        // Speech, 100 ms quiet, speech, then the end.
        let events =
            run_all(EndpointConfig::default(), &pattern(&[(0.9, 20), (0.0, 5), (0.9, 10), (0.0, 40)]));
        assert_eq!(
            events,
            [
                EndpointEvent::SpeechStart { at_ms: 0 },
                EndpointEvent::SpeechPause { at_ms: 400 },
                EndpointEvent::SpeechResume { at_ms: 500 },
                EndpointEvent::SpeechPause { at_ms: 700 },
                EndpointEvent::SpeechEnd { at_ms: 800, speech_ms: 800, silence_ms: 600 },
            ]
        );
    }

    #[test]
    fn a_click_shorter_than_min_speech_is_not_a_turn() {
        let events = run(EndpointConfig::default(), &pattern(&[(0.0, 10), (1.0, 2), (0.0, 40)]));
        assert_eq!(events, []);
    }

    #[test]
    fn a_pause_shorter_than_min_silence_does_not_end_the_turn() {
        let events = run(EndpointConfig::default(), &pattern(&[(1.0, 30), (0.0, 25), (1.0, 30), (0.0, 40)]));
        assert_eq!(events.len(), 2, "{events:?}");
    }

    #[test]
    fn hysteresis_keeps_a_wavering_probability_in_speech() {
        // 0.4 is below the threshold but above threshold - hysteresis: still speech.
        let events = run(EndpointConfig::default(), &pattern(&[(0.9, 10), (0.4, 60), (0.9, 5), (0.1, 40)]));
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[1], EndpointEvent::SpeechEnd { speech_ms, .. } if speech_ms >= 1500));
    }

    fn learned() -> EndpointConfig {
        EndpointConfig { turn_check_ms: 200, ..EndpointConfig::default() }
    }

    /// Runs frames until a turn check, answers it with `complete`, then the rest.
    fn with_verdict(complete: bool, probabilities: &[f32]) -> Vec<(u64, EndpointEvent)> {
        let mut ep = Endpointer::new(learned(), 20);
        let mut out = Vec::new();
        for (i, &p) in probabilities.iter().enumerate() {
            let at = 20 * i as u64;
            if let Some(e) = ep.handle_frame(at, p) {
                out.push((at, e));
                if let EndpointEvent::TurnCheck { pause } = e
                    && let Some(end) = ep.handle_turn_verdict(pause, complete, at + 20)
                {
                    out.push((at, end));
                }
            }
        }
        out
    }

    #[test]
    fn a_complete_verdict_ends_the_turn_at_the_check() {
        // 1 s of speech, then silence: asked at 200 ms of it, ended there.
        let events = with_verdict(true, &pattern(&[(0.9, 50), (0.0, 50)]));
        let ends: Vec<_> =
            events.iter().filter(|(_, e)| matches!(e, EndpointEvent::SpeechEnd { .. })).collect();
        assert_eq!(ends.len(), 1, "{events:?}");
        assert_eq!(ends[0].1, EndpointEvent::SpeechEnd { at_ms: 1100, speech_ms: 1100, silence_ms: 200 });
        assert!(events.iter().any(|(_, e)| *e == EndpointEvent::TurnCheck { pause: 1000 }));
    }

    #[test]
    fn an_incomplete_verdict_waits_the_long_silence_and_keeps_a_mid_thought_pause_in_the_turn() {
        // Speech, a 1 s pause (a caller reading a number), more speech, silence.
        let events = with_verdict(false, &pattern(&[(0.9, 50), (0.0, 50), (0.9, 30), (0.0, 100)]));
        let ends: Vec<_> = events
            .iter()
            .filter_map(|(_, e)| matches!(e, EndpointEvent::SpeechEnd { .. }).then_some(*e))
            .collect();
        // Without the model, the 1 s pause would have ended the turn at 600 ms.
        assert_eq!(
            ends,
            [EndpointEvent::SpeechEnd { at_ms: 2700, speech_ms: 2700, silence_ms: 1500 }],
            "{events:?}"
        );
        let plain = run(EndpointConfig::default(), &pattern(&[(0.9, 50), (0.0, 50), (0.9, 30), (0.0, 100)]));
        assert_eq!(plain.len(), 4, "two turns without the model: {plain:?}");
    }

    #[test]
    fn a_verdict_for_a_pause_the_caller_ended_changes_nothing() {
        let mut ep = Endpointer::new(learned(), 20);
        let mut check = None;
        for (i, &p) in pattern(&[(0.9, 20), (0.0, 12)]).iter().enumerate() {
            if let Some(EndpointEvent::TurnCheck { pause }) = ep.handle_frame(20 * i as u64, p) {
                check = Some(pause);
            }
        }
        let pause = check.expect("asked at 200 ms of silence");
        // The caller speaks again before the answer arrives.
        assert_eq!(ep.handle_frame(640, 0.9), Some(EndpointEvent::SpeechResume { at_ms: 640 }));
        assert_eq!(ep.handle_turn_verdict(pause, true, 660), None);
        assert!(ep.in_speech());
    }

    #[test]
    fn without_a_verdict_in_time_min_silence_ends_the_turn() {
        let events = run_all(learned(), &pattern(&[(0.9, 50), (0.0, 50)]));
        assert!(
            events.contains(&EndpointEvent::SpeechEnd { at_ms: 1100, speech_ms: 1100, silence_ms: 600 }),
            "{events:?}"
        );
    }

    #[test]
    fn an_early_transcript_is_offered_within_a_pause_and_the_voice_coming_back_is_reported() {
        let config = EndpointConfig { transcribe_early_ms: 120, ..learned() };
        // Speech, 300 ms quiet (early at 120, asked at 200), speech, then the end.
        let events = run_all(config, &pattern(&[(0.9, 20), (0.0, 15), (0.9, 10), (0.0, 40)]));
        assert_eq!(
            events,
            [
                EndpointEvent::SpeechStart { at_ms: 0 },
                EndpointEvent::SpeechPause { at_ms: 400 },
                EndpointEvent::TranscribeEarly { pause: 400 },
                EndpointEvent::TurnCheck { pause: 400 },
                EndpointEvent::SpeechResume { at_ms: 700 },
                EndpointEvent::SpeechPause { at_ms: 900 },
                EndpointEvent::TranscribeEarly { pause: 900 },
                EndpointEvent::TurnCheck { pause: 900 },
                EndpointEvent::SpeechEnd { at_ms: 1000, speech_ms: 1000, silence_ms: 600 },
            ]
        );
        // Off by default: never offered.
        let plain = run_all(learned(), &pattern(&[(0.9, 20), (0.0, 40)]));
        assert!(!plain.iter().any(|e| matches!(e, EndpointEvent::TranscribeEarly { .. })), "{plain:?}");
    }
}
