//! The turn machine on a simulated clock.

use std::time::{Duration, Instant};

use super::*;

/// A machine, a clock, and everything it asked for.
struct Harness {
    m: TurnMachine,
    now: Instant,
    out: Vec<TurnOutput>,
}

impl Harness {
    fn new(config: TurnConfig) -> Self {
        let mut h = Self { m: TurnMachine::new(config), now: Instant::now(), out: Vec::new() };
        h.m.handle_start(h.now);
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.m.poll_output() {
            self.out.push(o);
        }
    }

    /// Moves the clock forward by `ms`, firing every timer due on the way.
    fn advance(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        while let Some(t) = self.m.poll_timeout().filter(|&t| t <= target) {
            self.now = self.now.max(t);
            self.m.handle_timeout(self.now);
            self.drain();
            // A sans-IO machine never asks to be woken again at a time already handled.
            assert!(self.m.poll_timeout().is_none_or(|next| next > t), "timer at {t:?} fired and stayed due");
        }
        self.now = target;
        self.m.handle_timeout(self.now);
        self.drain();
    }

    fn take(&mut self) -> Vec<TurnOutput> {
        std::mem::take(&mut self.out)
    }

    fn speech(&mut self, start: bool) {
        if start {
            self.m.handle_speech_start(self.now);
        } else {
            self.m.handle_speech_end(self.now);
        }
        self.drain();
    }

    fn transcript(&mut self, text: &str, is_final: bool) {
        self.m.handle_transcript(self.now, text, is_final);
        self.drain();
    }

    fn playout(&mut self, event: PlayoutEvent) {
        self.m.handle_playout(self.now, event);
        self.drain();
    }

    /// Plays an agent line of `ms` to the end.
    fn play_all(&mut self, turn: TurnId, ms: u64) {
        self.playout(PlayoutEvent::Started { turn });
        self.advance(ms);
        self.playout(PlayoutEvent::Progress { turn, played_ms: ms });
        self.playout(PlayoutEvent::Finished { turn });
    }

    fn dtmf(&mut self, key: char) {
        self.m.handle_dtmf(self.now, DtmfKey::from_char(key).expect("a key"));
        self.drain();
    }
}

fn speak(turn: u64, text: &str, kind: LineKind) -> TurnOutput {
    TurnOutput::Speak { turn: TurnId(turn), text: text.to_owned(), kind }
}

fn commit(turn: u64, text: &str) -> TurnOutput {
    TurnOutput::CommitUserTurn { turn: TurnId(turn), text: text.to_owned(), source: TurnSource::Speech }
}

/// Greeting played; the caller asks one question.
fn greeted_and_asked(h: &mut Harness) {
    h.play_all(TurnId(1), 2000);
    h.take();
    h.advance(500);
    h.speech(true);
    h.advance(1500);
    h.transcript("what time do you open", false);
    h.speech(false);
    h.transcript("What time do you open?", true);
    h.advance(300);
}

#[test]
fn greeting_then_a_committed_turn() {
    let mut h = Harness::new(TurnConfig::default());
    assert_eq!(h.take(), [speak(1, "Hello! How can I help you today?", LineKind::Greeting)]);
    greeted_and_asked(&mut h);
    assert_eq!(h.take(), [commit(2, "What time do you open?")]);
    assert_eq!(h.m.agent_turn(), Some(TurnId(2)));
}

#[test]
fn the_turn_waits_for_the_final_transcript_up_to_the_maximum_delay() {
    let mut h = Harness::new(TurnConfig { greeting: None, ..TurnConfig::default() });
    h.speech(true);
    h.advance(1000);
    h.transcript("I need a", false);
    h.speech(false);
    // Only an interim transcript: no commit at the minimum delay ...
    h.advance(1000);
    assert_eq!(h.take(), []);
    // ... the final arrives, the turn commits at once.
    h.transcript("I need a taxi.", true);
    assert_eq!(h.take(), [commit(1, "I need a taxi.")]);

    // A final that never comes: the interim is committed at the maximum delay.
    h.playout(PlayoutEvent::Finished { turn: TurnId(1) });
    h.speech(true);
    h.advance(500);
    h.transcript("and a second", false);
    h.speech(false);
    h.advance(2999);
    assert_eq!(h.take(), []);
    h.advance(1);
    assert_eq!(h.take(), [commit(2, "and a second")]);
}

#[test]
fn a_sound_without_words_is_not_a_turn() {
    let mut h = Harness::new(TurnConfig { greeting: None, ..TurnConfig::default() });
    h.speech(true);
    h.advance(400);
    h.speech(false);
    h.advance(3000);
    assert_eq!(h.take(), []);
    // Still listening: the next utterance is turn 1.
    h.speech(true);
    h.transcript("hello", true);
    h.speech(false);
    h.advance(300);
    assert_eq!(h.take(), [commit(1, "hello")]);
}

#[test]
fn barge_in_mid_sentence_pauses_at_once_then_interrupts_with_what_was_heard() {
    let mut h = Harness::new(TurnConfig::default());
    greeted_and_asked(&mut h);
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(2) });
    h.advance(1200);
    h.playout(PlayoutEvent::Progress { turn: TurnId(2), played_ms: 1200 });
    h.speech(true);
    // The agent pauses on the caller's first sound ...
    assert_eq!(h.take(), [TurnOutput::PauseAgent { turn: TurnId(2) }]);
    // ... and is interrupted once the speech has lasted the minimum and
    // holds a word that is not a backchannel.
    h.advance(500);
    assert_eq!(h.take(), []);
    h.transcript("No, on", false);
    assert_eq!(h.take(), [TurnOutput::Interrupt { turn: TurnId(2), heard_ms: 1200 }]);
    // The interruption becomes the caller's next turn.
    h.transcript("No, on Sunday.", true);
    h.advance(300);
    h.speech(false);
    h.advance(300);
    assert_eq!(h.take(), [commit(3, "No, on Sunday.")]);
}

#[test]
fn a_cough_pauses_the_agent_which_then_resumes() {
    let mut h = Harness::new(TurnConfig::default());
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.advance(800);
    h.playout(PlayoutEvent::Progress { turn: TurnId(1), played_ms: 800 });
    h.speech(true);
    h.advance(150);
    h.speech(false);
    assert_eq!(h.take(), [TurnOutput::PauseAgent { turn: TurnId(1) }]);
    h.advance(1499);
    assert_eq!(h.take(), []);
    h.advance(1);
    assert_eq!(h.take(), [TurnOutput::ResumeAgent { turn: TurnId(1) }]);
    // The greeting plays on and ends normally; nothing was committed.
    h.playout(PlayoutEvent::Finished { turn: TurnId(1) });
    h.advance(100);
    assert_eq!(h.take(), []);
}

#[test]
fn a_backchannel_over_the_agent_lets_it_go_on_at_once() {
    let config = TurnConfig { final_per_speech_end: true, ..TurnConfig::default() };
    let mut h = Harness::new(config);
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.advance(800);
    // A long "okay, right": past the minimum speech, but no words yet.
    h.speech(true);
    h.advance(700);
    h.speech(false);
    assert_eq!(h.take(), [TurnOutput::PauseAgent { turn: TurnId(1) }]);
    // The window passes while the recogniser still owes its transcript: wait.
    h.advance(1600);
    assert_eq!(h.take(), []);
    h.transcript("Okay, right.", true);
    assert_eq!(h.take(), [TurnOutput::ResumeAgent { turn: TurnId(1) }]);
    // It was no turn: the agent finishes and nothing is committed.
    h.playout(PlayoutEvent::Finished { turn: TurnId(1) });
    h.advance(1000);
    assert_eq!(h.take(), []);
}

#[test]
fn words_over_the_agent_interrupt_it_once_they_are_heard() {
    let mut h = Harness::new(TurnConfig::default());
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.speech(true);
    h.advance(700);
    assert_eq!(h.take(), [TurnOutput::PauseAgent { turn: TurnId(1) }], "paused at once, words awaited");
    h.transcript("Okay, but", false);
    assert_eq!(h.take(), [TurnOutput::Interrupt { turn: TurnId(1), heard_ms: 0 }]);
    h.speech(false);
    h.transcript("Okay, but what about Sunday?", true);
    h.advance(300);
    assert_eq!(h.take(), [commit(2, "Okay, but what about Sunday?")]);
}

#[test]
fn backchannels_are_told_from_words() {
    for said in ["Uh-huh.", "mm-hmm", "Okay, right.", "Yeah. I see.", "got it", "OK"] {
        assert!(is_backchannel(said), "{said}");
    }
    for said in ["", "Okay, but what about Sunday?", "right now", "I see a problem", "okayish"] {
        assert!(!is_backchannel(said), "{said}");
    }
}

#[test]
fn a_voice_pause_times_the_sound_before_the_endpointer_ends_it() {
    let mut h = Harness::new(TurnConfig::default());
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.speech(true);
    h.advance(250);
    // The voice stopped after 250 ms; the endpointer ends the speech only
    // after its own silence (600 ms), past the 500 ms minimum.
    h.m.handle_speech_pause(h.now);
    let stopped = h.now;
    h.advance(600);
    h.speech(false);
    assert_eq!(
        h.take(),
        [TurnOutput::PauseAgent { turn: TurnId(1) }],
        "a 250 ms sound is not an interruption"
    );
    // The false-interruption window runs from when the voice stopped.
    h.advance(899);
    assert_eq!(h.take(), []);
    h.advance(1);
    assert_eq!(h.now - stopped, Duration::from_millis(1500));
    assert_eq!(h.take(), [TurnOutput::ResumeAgent { turn: TurnId(1) }]);
}

#[test]
fn a_voice_that_comes_back_keeps_counting() {
    let mut h = Harness::new(TurnConfig { min_interruption_words: 0, ..TurnConfig::default() });
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.speech(true);
    h.advance(200);
    h.m.handle_speech_pause(h.now);
    h.advance(100);
    h.m.handle_speech_resume(h.now);
    h.drain();
    h.advance(300);
    assert_eq!(
        h.take(),
        [TurnOutput::PauseAgent { turn: TurnId(1) }, TurnOutput::Interrupt { turn: TurnId(1), heard_ms: 0 }]
    );
}

#[test]
fn minimum_words_hold_the_interruption_until_the_caller_says_enough() {
    let config = TurnConfig { min_interruption_words: 2, ..TurnConfig::default() };
    let mut h = Harness::new(config);
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.speech(true);
    h.transcript("uh", false);
    h.advance(1000);
    assert_eq!(h.take(), [TurnOutput::PauseAgent { turn: TurnId(1) }]);
    h.transcript("uh wait", false);
    assert_eq!(h.take(), [TurnOutput::Interrupt { turn: TurnId(1), heard_ms: 0 }]);
}

#[test]
fn an_agent_that_cannot_be_interrupted_ignores_the_caller() {
    let config = TurnConfig { allow_interruptions: false, ..TurnConfig::default() };
    let mut h = Harness::new(config);
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.speech(true);
    h.transcript("stop talking", true);
    h.advance(1000);
    h.speech(false);
    h.dtmf('5');
    h.advance(3000);
    assert_eq!(h.take(), []);
    // What was said over the agent does not leak into the next turn.
    h.playout(PlayoutEvent::Finished { turn: TurnId(1) });
    h.speech(true);
    h.transcript("hi", true);
    h.speech(false);
    h.advance(300);
    assert_eq!(h.take(), [commit(2, "hi")]);
}

#[test]
fn speech_before_the_reply_starts_drops_the_reply() {
    let mut h = Harness::new(TurnConfig::default());
    greeted_and_asked(&mut h);
    assert_eq!(h.take(), [commit(2, "What time do you open?")]);
    h.advance(200);
    h.speech(true);
    assert_eq!(h.take(), [TurnOutput::Interrupt { turn: TurnId(2), heard_ms: 0 }]);
}

#[test]
fn a_silent_caller_is_reprompted_then_hung_up_on() {
    let mut h = Harness::new(TurnConfig::default());
    h.play_all(TurnId(1), 2000);
    h.take();
    h.advance(7999);
    assert_eq!(h.take(), []);
    h.advance(1);
    assert_eq!(h.take(), [speak(2, "Are you still there?", LineKind::Reprompt)]);
    h.play_all(TurnId(2), 1000);
    h.advance(8000);
    assert_eq!(h.take(), [speak(3, "Are you still there?", LineKind::Reprompt)]);
    h.play_all(TurnId(3), 1000);
    // No third reprompt; 30 s after the silence began, goodbye and hang up.
    h.advance(11_999);
    assert_eq!(h.take(), []);
    h.advance(1);
    assert_eq!(h.take(), [speak(4, "Thank you for calling. Goodbye!", LineKind::Goodbye)]);
    h.play_all(TurnId(4), 1500);
    assert_eq!(h.take(), [TurnOutput::Hangup { reason: HangupReason::MaxSilence }]);
    assert!(h.m.is_ended());
}

#[test]
fn a_caller_who_speaks_resets_the_silence_clock() {
    let mut h = Harness::new(TurnConfig::default());
    h.take();
    h.play_all(TurnId(1), 1000);
    h.advance(8000);
    assert_eq!(h.take(), [speak(2, "Are you still there?", LineKind::Reprompt)]);
    h.play_all(TurnId(2), 1000);
    h.speech(true);
    h.transcript("yes, sorry", true);
    h.speech(false);
    h.advance(300);
    assert_eq!(h.take(), [commit(3, "yes, sorry")]);
    h.play_all(TurnId(3), 1000);
    // A fresh silence: two more reprompts before any goodbye.
    h.advance(8000);
    assert_eq!(h.take(), [speak(4, "Are you still there?", LineKind::Reprompt)]);
}

#[test]
fn dtmf_digits_are_a_turn_at_pound_or_after_a_pause_and_interrupt_the_agent() {
    let mut h = Harness::new(TurnConfig::default());
    h.play_all(TurnId(1), 1000);
    h.take();
    for k in ['4', '5', '7', '2', '#'] {
        h.dtmf(k);
        h.advance(300);
    }
    let dtmf = |turn, text: &str| TurnOutput::CommitUserTurn {
        turn: TurnId(turn),
        text: text.into(),
        source: TurnSource::Dtmf,
    };
    assert_eq!(h.take(), [dtmf(2, "4572")]);
    // A key while the agent answers interrupts it; the digit commits after the pause.
    h.playout(PlayoutEvent::Started { turn: TurnId(2) });
    h.advance(500);
    h.playout(PlayoutEvent::Progress { turn: TurnId(2), played_ms: 500 });
    h.dtmf('1');
    assert_eq!(h.take(), [TurnOutput::Interrupt { turn: TurnId(2), heard_ms: 500 }]);
    h.advance(1999);
    assert_eq!(h.take(), []);
    h.advance(1);
    assert_eq!(h.take(), [dtmf(3, "1")]);
}

#[test]
fn the_call_ends_at_its_maximum_duration_even_mid_sentence() {
    let config = TurnConfig { max_call_duration_ms: Some(60_000), ..TurnConfig::default() };
    let mut h = Harness::new(config);
    h.take();
    h.playout(PlayoutEvent::Started { turn: TurnId(1) });
    h.advance(59_000);
    h.playout(PlayoutEvent::Progress { turn: TurnId(1), played_ms: 59_000 });
    h.advance(1000);
    assert_eq!(
        h.take(),
        [
            TurnOutput::Interrupt { turn: TurnId(1), heard_ms: 59_000 },
            speak(2, "Thank you for calling. Goodbye!", LineKind::Goodbye),
        ]
    );
    h.play_all(TurnId(2), 1000);
    assert_eq!(h.take(), [TurnOutput::Hangup { reason: HangupReason::MaxDuration }]);
}

#[test]
fn a_goodbye_whose_playout_never_finishes_still_hangs_up() {
    let mut h = Harness::new(TurnConfig::default());
    h.take();
    h.m.handle_end_call(h.now, Some("Bye.".into()));
    h.drain();
    h.playout(PlayoutEvent::Started { turn: TurnId(2) });
    h.advance(19_999);
    // The greeting had not started: it is dropped for the goodbye.
    assert_eq!(
        h.take(),
        [TurnOutput::Interrupt { turn: TurnId(1), heard_ms: 0 }, speak(2, "Bye.", LineKind::Goodbye)]
    );
    h.advance(1);
    assert_eq!(h.take(), [TurnOutput::Hangup { reason: HangupReason::AgentEnded }]);
}

#[test]
fn the_agent_can_end_the_call_with_a_goodbye() {
    let mut h = Harness::new(TurnConfig::default());
    h.play_all(TurnId(1), 1000);
    h.take();
    h.m.handle_end_call(h.now, Some("Bye now.".into()));
    h.drain();
    assert_eq!(h.take(), [speak(2, "Bye now.", LineKind::Goodbye)]);
    h.play_all(TurnId(2), 800);
    assert_eq!(h.take(), [TurnOutput::Hangup { reason: HangupReason::AgentEnded }]);
    // Nothing happens after the end.
    h.speech(true);
    h.advance(60_000);
    assert_eq!(h.take(), []);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn a_final_from_before_a_short_pause_does_not_commit_the_turn_without_the_rest() {
    let config = TurnConfig { greeting: None, final_per_speech_end: true, ..TurnConfig::default() };
    let mut h = Harness::new(config);
    // "Hello." then a short pause the endpointer calls an end ...
    h.speech(true);
    h.advance(600);
    h.speech(false);
    h.advance(100);
    // ... the caller goes on before "Hello." is transcribed.
    h.speech(true);
    h.transcript("Hello.", true);
    h.advance(2000);
    h.speech(false);
    // The first stretch's final is in, the second's is not: no commit yet.
    h.advance(1000);
    assert_eq!(h.take(), []);
    h.transcript("What time do you open on Saturday?", true);
    assert_eq!(h.take(), [commit(1, "Hello. What time do you open on Saturday?")]);
}

#[test]
fn without_a_final_per_end_of_speech_any_final_settles_the_turn() {
    // A streaming recogniser's finals do not follow the endpointer's ends.
    let mut h = Harness::new(TurnConfig { greeting: None, ..TurnConfig::default() });
    h.speech(true);
    h.advance(600);
    h.transcript("What time do you open?", true);
    h.speech(false);
    h.advance(300);
    assert_eq!(h.take(), [commit(1, "What time do you open?")]);
}

#[test]
fn a_voicemail_message_plays_to_its_end_however_long_then_the_call_ends() {
    // Never started (the agent listened for who answered), no greeting.
    let mut m = TurnMachine::new(TurnConfig::default());
    let mut now = Instant::now();
    m.leave_message(now, "Your cake is ready.".into());
    let Some(TurnOutput::Speak { turn, text, kind: LineKind::Voicemail }) = m.poll_output() else {
        panic!("no message")
    };
    assert_eq!(text, "Your cake is ready.");
    m.handle_playout(now, PlayoutEvent::Started { turn });
    // A 40 s message keeps reporting progress: never cut off by the goodbye's limit.
    for s in 1..=40 {
        now += Duration::from_secs(1);
        m.handle_playout(now, PlayoutEvent::Progress { turn, played_ms: s * 1000 });
        m.handle_timeout(now);
        assert_eq!(m.poll_output(), None, "hung up {s} s into the message");
    }
    m.handle_playout(now, PlayoutEvent::Finished { turn });
    assert_eq!(m.poll_output(), Some(TurnOutput::Hangup { reason: HangupReason::MessageLeft }));
    // A second message is not asked for.
    m.leave_message(now, "Again.".into());
    assert_eq!(m.poll_output(), None);
}

#[test]
fn on_hold_the_caller_takes_no_turn_and_no_silence_ends_the_call() {
    let config = TurnConfig {
        reprompt_after_ms: Some(3000),
        hangup_after_silence_ms: Some(8000),
        ..TurnConfig::default()
    };
    let mut h = Harness::new(config);
    h.play_all(TurnId(1), 2000);
    h.take();
    h.m.hold();
    assert!(h.m.is_holding());
    // Talk, keys and a long silence: nothing happens.
    h.speech(true);
    h.advance(1000);
    h.transcript("hello are you there", true);
    h.speech(false);
    h.dtmf('1');
    h.dtmf('#');
    h.m.say(h.now, "Sorry, I didn't catch that.".into(), LineKind::Fallback);
    h.drain();
    h.advance(60_000);
    assert_eq!(h.take(), [], "a turn, a line or a hang-up while on hold");
    assert!(h.m.is_holding());
    // Back with the agent: its line plays, then the caller's words are a turn again.
    h.m.end_hold(h.now);
    h.m.say(h.now, "Nobody is free.".into(), LineKind::TransferFailed);
    h.drain();
    assert_eq!(h.take(), [speak(2, "Nobody is free.", LineKind::TransferFailed)]);
    h.play_all(TurnId(2), 1000);
    h.speech(true);
    h.advance(800);
    h.speech(false);
    h.transcript("Okay, then book me a table.", true);
    h.advance(300);
    assert_eq!(h.take(), [commit(3, "Okay, then book me a table.")]);
}

#[test]
fn hold_ends_at_the_calls_length_limit_with_the_goodbye() {
    let config = TurnConfig {
        max_call_duration_ms: Some(10_000),
        goodbye: Some("Bye.".into()),
        ..TurnConfig::default()
    };
    let mut h = Harness::new(config);
    h.play_all(TurnId(1), 2000);
    h.take();
    h.m.hold();
    h.advance(9000);
    assert!(!h.m.is_holding(), "the call's limit ends the hold");
    assert_eq!(h.take(), [speak(2, "Bye.", LineKind::Goodbye)]);
}
