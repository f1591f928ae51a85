//! Answering-machine detection for calls we place: within a few seconds
//! of the answer, whether a person or a machine picked up, and, for a
//! machine, when its recording has begun (the beep) so a message can be
//! left on it.
//!
//! Pure and sans-IO, fed the call's 20 ms frames with the voice activity
//! detector's verdict, and the recogniser's words, each with the call's
//! media time. The evidence, in the order it usually comes:
//!
//! - **Cadence.** A person says a word or two ("Hello?") and waits for an
//!   answer: a short greeting, then silence (judged once its words are
//!   known, see below). A machine talks on: a greeting longer than
//!   [`AmdConfig::greeting_ms`] without a pause of
//!   [`AmdConfig::after_greeting_silence_ms`] is a machine's.
//! - **The beep.** A pure tone (400 to 2500 Hz, one frequency holding most
//!   of the frame's energy, steady for 160 ms) is a machine's record tone,
//!   whenever it comes. Voice is rich in harmonics, so a vowel is never one.
//! - **The words.** "Leave a message", "not available", "after the tone":
//!   a machine's, whatever the cadence said so far.
//!
//! No voice for [`AmdConfig::initial_silence_ms`], or no decision by
//! [`AmdConfig::max_analysis_ms`], is `unknown` (the agent then talks, as
//! to a person). After a `machine` verdict the detector goes on listening
//! for when to leave the message: the beep's end, or the end of the
//! greeting without one ([`AmdConfig::message_after_silence_ms`]), or at
//! the latest [`AmdConfig::max_message_wait_ms`] after the verdict.

use serde::{Deserialize, Serialize};

use super::Frame;
use super::vad::FRAME_SAMPLES;

/// The detector's timings, in ms of the call's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdConfig {
    /// No voice this long after the answer: `unknown`.
    pub initial_silence_ms: u32,
    /// A greeting (voice without a pause of `after_greeting_silence_ms`)
    /// this long is a machine's.
    pub greeting_ms: u32,
    /// Silence this long after a shorter greeting: a person waiting ...
    pub after_greeting_silence_ms: u32,
    /// ... once the recogniser's words for it have come (a machine's short
    /// greeting, "Please leave a message.", says what it is), or this much
    /// later without them.
    pub words_wait_ms: u32,
    /// No decision by then: `unknown`.
    pub max_analysis_ms: u32,
    /// For a message on a machine with no beep: silence this long after its
    /// greeting means it is recording.
    pub message_after_silence_ms: u32,
    /// The message starts at the latest this long after the verdict.
    pub max_message_wait_ms: u32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            after_greeting_silence_ms: 800,
            words_wait_ms: 1000,
            max_analysis_ms: 5000,
            message_after_silence_ms: 2500,
            max_message_wait_ms: 30_000,
        }
    }
}

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdResult {
    Human,
    Machine,
    /// Silence, or no decision in time; the agent talks as to a person.
    Unknown,
}

impl AmdResult {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Machine => "machine",
            Self::Unknown => "unknown",
        }
    }
}

/// What decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdReason {
    /// A short greeting, then silence.
    ShortGreeting,
    /// A greeting too long for a person's.
    LongGreeting,
    /// A machine's words.
    Phrase,
    /// A record tone.
    Beep,
    /// Nobody spoke.
    Silence,
    /// No decision in time.
    Timeout,
}

/// The verdict and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    pub result: AmdResult,
    pub reason: AmdReason,
    /// When it was decided, in ms after the answer.
    pub decided_ms: u64,
    /// How long the far end had spoken before its first pause (0: not at all).
    pub greeting_ms: u64,
    /// What the recogniser had heard by then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub words: String,
    /// The machine's phrase that was heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase: Option<String>,
    /// The record tone's frequency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beep_hz: Option<u32>,
}

/// Why a message starts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageCue {
    /// The record tone ended.
    Beep,
    /// The greeting ended, and no tone came.
    Silence,
    /// It took too long.
    Waited,
}

/// What the detector found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmdEvent {
    Decided(Detection),
    /// (After a `machine` verdict) the machine records now: leave the message.
    LeaveMessage {
        cue: MessageCue,
        at_ms: u64,
    },
}

/// Voice this long (consecutive voiced frames) is a word, not a click.
const MIN_WORD_FRAMES: u32 = 5;

/// A voiced frame, by the VAD's probability.
const VOICED: f32 = 0.5;

/// Machine phrases, lower case without punctuation or apostrophes.
const PHRASES: [&str; 17] = [
    "leave a message",
    "leave your message",
    "leave me a message",
    "leave your name",
    "not available",
    "unavailable",
    "cant take your call",
    "cannot take your call",
    "cant come to the phone",
    "after the tone",
    "after the beep",
    "at the tone",
    "voicemail",
    "voice mail",
    "mailbox",
    "record your message",
    "youve reached",
];

/// See the module documentation.
#[derive(Debug)]
pub struct Detector {
    config: AmdConfig,
    beep: BeepDetector,
    verdict: Option<AmdResult>,
    /// When the verdict came.
    decided_ms: u64,
    /// Consecutive voiced frames.
    run: u32,
    /// The first word's start, and the last voiced frame's end.
    voice_start: Option<u64>,
    last_voice: Option<u64>,
    /// The greeting's length at its first pause.
    greeting_ms: Option<u64>,
    /// Final words so far, and the latest interim ones ...
    words: String,
    interim: String,
    /// ... and when words last came.
    words_at: Option<u64>,
    /// The end of the last record tone.
    beep_ended: Option<u64>,
    message_due: bool,
}

impl Detector {
    #[must_use]
    pub fn new(config: AmdConfig) -> Self {
        Self {
            config,
            beep: BeepDetector::new(),
            verdict: None,
            decided_ms: 0,
            run: 0,
            voice_start: None,
            last_voice: None,
            greeting_ms: None,
            words: String::new(),
            interim: String::new(),
            words_at: None,
            beep_ended: None,
            message_due: false,
        }
    }

    /// The verdict, once there is one.
    #[must_use]
    pub fn verdict(&self) -> Option<AmdResult> {
        self.verdict
    }

    /// The far end's frame ending at `at_ms` after the answer, and the
    /// VAD's speech probability for it.
    pub fn handle_frame(&mut self, at_ms: u64, frame: &Frame, speech: f32) -> Option<AmdEvent> {
        let tone = self.beep.handle(at_ms, frame);
        if let Some(BeepEvent::Ended { at_ms: end, .. }) = tone {
            self.beep_ended = Some(end);
        }
        // A tone is not a voice, whatever the VAD says of it.
        if speech >= VOICED && !self.beep.is_tonal() {
            self.run += 1;
            if self.run >= MIN_WORD_FRAMES {
                self.voice_start.get_or_insert(at_ms - u64::from(self.run) * 20);
                self.last_voice = Some(at_ms);
            }
        } else {
            self.run = 0;
            if let (Some(start), Some(last), None) = (self.voice_start, self.last_voice, self.greeting_ms)
                && at_ms - last >= u64::from(self.config.after_greeting_silence_ms)
            {
                self.greeting_ms = Some(last - start);
            }
        }
        match self.verdict {
            None => self.decide(at_ms, tone).map(AmdEvent::Decided),
            Some(AmdResult::Machine) => self.message_cue(at_ms, tone),
            Some(_) => None,
        }
    }

    /// The recogniser's words (a final transcript, or an interim one).
    pub fn handle_words(&mut self, at_ms: u64, text: &str, is_final: bool) -> Option<AmdEvent> {
        if !text.trim().is_empty() {
            self.words_at = Some(at_ms);
        }
        if is_final {
            if !self.words.is_empty() {
                self.words.push(' ');
            }
            self.words.push_str(text.trim());
            self.interim.clear();
        } else {
            text.trim().clone_into(&mut self.interim);
        }
        if self.verdict.is_some() {
            return None;
        }
        let heard = normalise(&format!("{} {}", self.words, self.interim));
        let phrase = PHRASES.iter().find(|p| contains_phrase(&heard, p))?;
        let mut d = self.detection(at_ms, AmdResult::Machine, AmdReason::Phrase);
        d.phrase = Some((*phrase).to_owned());
        Some(AmdEvent::Decided(d))
    }

    fn decide(&mut self, at_ms: u64, tone: Option<BeepEvent>) -> Option<Detection> {
        if let Some(BeepEvent::Started { hz, .. }) = tone {
            let mut d = self.detection(at_ms, AmdResult::Machine, AmdReason::Beep);
            d.beep_hz = Some(hz);
            return Some(d);
        }
        let c = self.config;
        let (result, reason) = match (self.voice_start, self.last_voice) {
            (Some(start), Some(last)) if last - start >= u64::from(c.greeting_ms) => {
                (AmdResult::Machine, AmdReason::LongGreeting)
            }
            (Some(start), Some(last))
                if at_ms - last >= u64::from(c.after_greeting_silence_ms)
                    && (self.words_at.is_some_and(|w| w >= start)
                        || at_ms - last >= u64::from(c.after_greeting_silence_ms + c.words_wait_ms)) =>
            {
                (AmdResult::Human, AmdReason::ShortGreeting)
            }
            (None, _) if at_ms >= u64::from(c.initial_silence_ms) => (AmdResult::Unknown, AmdReason::Silence),
            _ if at_ms >= u64::from(c.max_analysis_ms) => (AmdResult::Unknown, AmdReason::Timeout),
            _ => return None,
        };
        Some(self.detection(at_ms, result, reason))
    }

    fn detection(&mut self, at_ms: u64, result: AmdResult, reason: AmdReason) -> Detection {
        self.verdict = Some(result);
        self.decided_ms = at_ms;
        let spoken = match (self.voice_start, self.last_voice) {
            (Some(start), Some(last)) => last - start,
            _ => 0,
        };
        let words = format!("{} {}", self.words, self.interim).trim().to_owned();
        Detection {
            result,
            reason,
            decided_ms: at_ms,
            greeting_ms: self.greeting_ms.unwrap_or(spoken),
            words,
            phrase: None,
            beep_hz: None,
        }
    }

    /// When a machine starts recording: the tone's end, the greeting's
    /// end with no tone, or the longest wait.
    fn message_cue(&mut self, at_ms: u64, tone: Option<BeepEvent>) -> Option<AmdEvent> {
        if self.message_due {
            return None;
        }
        let cue = if let Some(BeepEvent::Ended { .. }) = tone {
            Some(MessageCue::Beep)
        } else if self.beep.is_tonal() {
            None
        } else if at_ms - self.decided_ms >= u64::from(self.config.max_message_wait_ms) {
            Some(MessageCue::Waited)
        } else {
            // Quiet since the last voice, tone, or the verdict.
            let quiet_since = [self.last_voice, self.beep_ended, Some(self.decided_ms)]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(self.decided_ms);
            (self.run == 0 && at_ms - quiet_since >= u64::from(self.config.message_after_silence_ms))
                .then_some(MessageCue::Silence)
        };
        let cue = cue?;
        self.message_due = true;
        Some(AmdEvent::LeaveMessage { cue, at_ms })
    }
}

/// Lower case, letters, digits and single spaces; apostrophes dropped
/// ("can't" is "cant").
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\'' || c == '’' {
            continue;
        }
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim().to_owned()
}

/// `phrase` in `text` on word boundaries.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(i, _)| {
        let before = i == 0 || text.as_bytes()[i - 1] == b' ';
        let end = i + phrase.len();
        let after = end == text.len() || text.as_bytes()[end] == b' ';
        before && after
    })
}

/// The power of `frame` at the frequency whose coefficient is `coeff`
/// (2 cos(2 pi f / rate)): Goertzel's algorithm, one DFT term.
fn goertzel(frame: &Frame, coeff: f64) -> f64 {
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in frame {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// A record tone's start (160 ms into it) or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeepEvent {
    Started { hz: u32, at_ms: u64 },
    Ended { hz: u32, at_ms: u64 },
}

/// The tone frequencies looked for: 400 to 2500 Hz, 25 Hz apart, then
/// refined around the strongest.
const TONE_LOW_HZ: u32 = 400;
const TONE_HIGH_HZ: u32 = 2500;
const TONE_STEP_HZ: u32 = 25;
/// The share of a frame's energy one frequency must hold: a beep over a
/// noisy line holds over 90 %; a piano's note or a car horn, harmonics
/// and all, holds 70 to 80 %.
const TONE_SHARE: f64 = 0.85;
/// Quieter than about -50 dBFS is no tone.
const TONE_MIN_RMS: f64 = 100.0;
/// Frames of a steady tone for a beep (160 ms), and the drift allowed.
const BEEP_FRAMES: u32 = 8;
const BEEP_DRIFT_HZ: u32 = 50;
/// Non-tonal frames that end a beep (one lost packet's concealment does not).
const BEEP_GAP_FRAMES: u32 = 2;

/// Finds steady pure tones in 16 kHz frames (Goertzel's algorithm at each
/// frequency looked for).
#[derive(Debug)]
pub struct BeepDetector {
    /// Each frequency's Goertzel coefficient, 2 cos(2 pi f / 16000).
    coefficients: Vec<(u32, f64)>,
    /// The tone being followed: its frequency, when it began, its frames.
    tone: Option<(u32, u64, u32)>,
    /// Non-tonal frames since the tone's last.
    gap: u32,
    last_tonal_end: u64,
    sounding: bool,
    tonal: bool,
}

impl Default for BeepDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl BeepDetector {
    #[must_use]
    pub fn new() -> Self {
        let coefficients = (TONE_LOW_HZ..=TONE_HIGH_HZ)
            .step_by(TONE_STEP_HZ as usize)
            .map(|hz| (hz, 2.0 * (std::f64::consts::TAU * f64::from(hz) / 16_000.0).cos()))
            .collect();
        Self { coefficients, tone: None, gap: 0, last_tonal_end: 0, sounding: false, tonal: false }
    }

    /// Whether the last frame held a pure tone.
    #[must_use]
    pub fn is_tonal(&self) -> bool {
        self.tonal
    }

    /// The frame ending at `at_ms`.
    pub fn handle(&mut self, at_ms: u64, frame: &Frame) -> Option<BeepEvent> {
        let found = self.dominant_tone(frame);
        self.tonal = found.is_some();
        match (found, self.tone) {
            (Some(hz), Some((f, start, frames))) if hz.abs_diff(f) <= BEEP_DRIFT_HZ => {
                self.gap = 0;
                self.last_tonal_end = at_ms;
                self.tone = Some((f, start, frames + 1));
                if !self.sounding && frames + 1 >= BEEP_FRAMES {
                    self.sounding = true;
                    return Some(BeepEvent::Started { hz: f, at_ms: start });
                }
                None
            }
            (Some(hz), _) => {
                let ended = self.end();
                self.gap = 0;
                self.last_tonal_end = at_ms;
                self.tone = Some((hz, at_ms - 20, 1));
                ended
            }
            (None, Some(_)) => {
                self.gap += 1;
                if self.gap >= BEEP_GAP_FRAMES { self.end() } else { None }
            }
            (None, None) => None,
        }
    }

    /// Stops following the tone; its end, if it was a beep.
    fn end(&mut self) -> Option<BeepEvent> {
        let (hz, _, _) = self.tone.take()?;
        self.gap = 0;
        std::mem::take(&mut self.sounding).then_some(BeepEvent::Ended { hz, at_ms: self.last_tonal_end })
    }

    /// The frequency holding [`TONE_SHARE`] of the frame's energy, if one does.
    fn dominant_tone(&self, frame: &Frame) -> Option<u32> {
        let energy: f64 = frame.iter().map(|&s| f64::from(s).powi(2)).sum();
        let n = FRAME_SAMPLES as f64;
        if (energy / n).sqrt() < TONE_MIN_RMS {
            return None;
        }
        let (hz, power) = self
            .coefficients
            .iter()
            .map(|&(hz, coeff)| (hz, goertzel(frame, coeff)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        // Then to within 2.5 Hz of it: a pure tone's power is all there.
        let (hz, power) = [-10i32, -5, 5, 10]
            .into_iter()
            .map(|d| {
                let f = f64::from(hz) + f64::from(d);
                (f, goertzel(frame, 2.0 * (std::f64::consts::TAU * f / 16_000.0).cos()))
            })
            .fold((f64::from(hz), power), |best, p| if p.1 > best.1 { p } else { best });
        let hz = hz as u32;
        (power * 2.0 / (n * energy) >= TONE_SHARE).then_some(hz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, amplitude: f64, frames: usize, offset: usize) -> Vec<Frame> {
        (0..frames)
            .map(|f| {
                let mut frame = [0i16; FRAME_SAMPLES];
                for (i, s) in frame.iter_mut().enumerate() {
                    let t = (offset + f * FRAME_SAMPLES + i) as f64 / 16_000.0;
                    *s = (amplitude * (std::f64::consts::TAU * hz * t).sin()) as i16;
                }
                frame
            })
            .collect()
    }

    /// Feeds `frames` (with `speech` for each) from `at_ms`; the events.
    fn feed(d: &mut Detector, at_ms: &mut u64, frames: &[(Frame, f32)]) -> Vec<AmdEvent> {
        let mut events = Vec::new();
        for (frame, speech) in frames {
            *at_ms += 20;
            events.extend(d.handle_frame(*at_ms, frame, *speech));
        }
        events
    }

    fn silence(frames: usize) -> Vec<(Frame, f32)> {
        vec![([0; FRAME_SAMPLES], 0.0); frames]
    }

    /// Voice (noise the VAD calls speech).
    fn voice(frames: usize) -> Vec<(Frame, f32)> {
        let mut seed = 7u32;
        (0..frames)
            .map(|_| {
                let mut f = [0i16; FRAME_SAMPLES];
                for s in &mut f {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    *s = ((seed >> 16) as i16) / 8;
                }
                (f, 0.9)
            })
            .collect()
    }

    fn decided(events: &[AmdEvent]) -> Option<&Detection> {
        events.iter().find_map(|e| match e {
            AmdEvent::Decided(d) => Some(d),
            AmdEvent::LeaveMessage { .. } => None,
        })
    }

    #[test]
    fn a_short_hello_then_silence_is_a_person_once_its_words_are_known() {
        // "Hello?" (600 ms), its words 300 ms after it: a person, 800 ms after it.
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        let mut events = feed(&mut d, &mut at, &silence(25));
        events.extend(feed(&mut d, &mut at, &voice(30)));
        assert!(decided(&events).is_none(), "undecided while they speak");
        events.extend(feed(&mut d, &mut at, &silence(15)));
        assert!(d.handle_words(at, "Hello?", true).is_none());
        events.extend(feed(&mut d, &mut at, &silence(60)));
        let v = decided(&events).expect("a verdict");
        assert_eq!((v.result, v.reason), (AmdResult::Human, AmdReason::ShortGreeting));
        assert_eq!((v.greeting_ms, v.words.as_str()), (600, "Hello?"));
        assert_eq!(v.decided_ms, 1100 + 800, "800 ms of silence after the hello");
        // No words come (a recogniser that is slow, or failing): a second later.
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        feed(&mut d, &mut at, &silence(25));
        feed(&mut d, &mut at, &voice(30));
        let v = decided(&feed(&mut d, &mut at, &silence(150))).cloned().expect("a verdict");
        assert_eq!((v.result, v.decided_ms), (AmdResult::Human, 1100 + 800 + 1000));
        // A machine's short greeting says what it is meanwhile.
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        feed(&mut d, &mut at, &voice(50));
        feed(&mut d, &mut at, &silence(45));
        let e = d.handle_words(at, "Please leave a message.", true);
        assert!(
            matches!(
                e,
                Some(AmdEvent::Decided(Detection {
                    result: AmdResult::Machine,
                    reason: AmdReason::Phrase,
                    ..
                }))
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_long_greeting_is_a_machine_and_its_beep_cues_the_message() {
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        // Sentences with short pauses between them.
        let mut events = Vec::new();
        for _ in 0..3 {
            events.extend(feed(&mut d, &mut at, &voice(50)));
            events.extend(feed(&mut d, &mut at, &silence(20)));
        }
        let v = decided(&events).expect("a verdict").clone();
        assert_eq!((v.result, v.reason), (AmdResult::Machine, AmdReason::LongGreeting));
        assert_eq!(v.decided_ms, 1500, "1.5 s of greeting, its first pause included");
        assert!(!events.iter().any(|e| matches!(e, AmdEvent::LeaveMessage { .. })), "no message over it");
        // The beep (1 kHz, 400 ms), which the VAD calls speech.
        let beep: Vec<_> = tone(1000.0, 8000.0, 20, 0).into_iter().map(|f| (f, 0.9)).collect();
        let before_beep = at;
        let events = feed(&mut d, &mut at, &beep);
        assert!(events.is_empty(), "{events:?}");
        let events = feed(&mut d, &mut at, &silence(5));
        assert_eq!(
            events,
            vec![AmdEvent::LeaveMessage { cue: MessageCue::Beep, at_ms: before_beep + 400 + 40 }]
        );
    }

    #[test]
    fn a_beep_alone_is_a_machine() {
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        let mut frames = silence(10);
        frames.extend(tone(1400.0, 3000.0, 15, 0).into_iter().map(|f| (f, 0.0)));
        let events = feed(&mut d, &mut at, &frames);
        let v = decided(&events).expect("a verdict");
        assert_eq!((v.result, v.reason, v.beep_hz), (AmdResult::Machine, AmdReason::Beep, Some(1400)));
        assert_eq!(v.decided_ms, 200 + 160);
    }

    #[test]
    fn a_machines_words_decide_it() {
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        feed(&mut d, &mut at, &voice(20));
        assert!(d.handle_words(at, "Hi, this is Sam.", true).is_none());
        let e = d.handle_words(at, "I can't take your call", false);
        let Some(AmdEvent::Decided(v)) = e else { panic!("{e:?}") };
        assert_eq!((v.result, v.reason), (AmdResult::Machine, AmdReason::Phrase));
        assert_eq!(v.phrase.as_deref(), Some("cant take your call"));
        assert_eq!(v.words, "Hi, this is Sam. I can't take your call");
        // Words inside others are not the phrase.
        let mut d = Detector::new(AmdConfig::default());
        assert!(d.handle_words(0, "Hello, Mr. Malleave a messages", true).is_none());
    }

    #[test]
    fn silence_is_unknown_and_so_is_no_decision() {
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        let v = decided(&feed(&mut d, &mut at, &silence(200))).cloned().expect("a verdict");
        assert_eq!((v.result, v.reason, v.decided_ms), (AmdResult::Unknown, AmdReason::Silence, 2500));
        // Voice on and off, never long and never a long pause.
        let mut d = Detector::new(AmdConfig { greeting_ms: 10_000, ..AmdConfig::default() });
        let mut at = 0;
        let mut events = Vec::new();
        for _ in 0..10 {
            events.extend(feed(&mut d, &mut at, &voice(15)));
            events.extend(feed(&mut d, &mut at, &silence(15)));
        }
        let v = decided(&events).expect("a verdict");
        assert_eq!((v.result, v.reason, v.decided_ms), (AmdResult::Unknown, AmdReason::Timeout, 5000));
    }

    #[test]
    fn without_a_beep_the_message_waits_for_the_greetings_end() {
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        feed(&mut d, &mut at, &voice(100));
        assert_eq!(d.verdict(), Some(AmdResult::Machine));
        let spoke_until = at;
        let events = feed(&mut d, &mut at, &silence(200));
        assert_eq!(
            events,
            vec![AmdEvent::LeaveMessage { cue: MessageCue::Silence, at_ms: spoke_until + 2500 }]
        );
        // A machine that never stops: the longest wait.
        let mut d = Detector::new(AmdConfig::default());
        let mut at = 0;
        let events = feed(&mut d, &mut at, &voice(1700));
        assert_eq!(
            events.last(),
            Some(&AmdEvent::LeaveMessage { cue: MessageCue::Waited, at_ms: 1500 + 30_000 })
        );
    }

    #[test]
    fn tones_are_found_at_any_frequency_and_steady_tones_only() {
        for hz in [440.0, 850.0, 1000.0, 1333.0, 2100.0] {
            let mut b = BeepDetector::new();
            let events: Vec<_> = tone(hz, 2000.0, 20, 0)
                .iter()
                .chain(&[[0; FRAME_SAMPLES]; 3])
                .enumerate()
                .filter_map(|(i, f)| b.handle(20 * (i as u64 + 1), f))
                .collect();
            let [BeepEvent::Started { hz: found, at_ms: 0 }, BeepEvent::Ended { at_ms: 400, .. }] =
                events[..]
            else {
                panic!("{hz} Hz: {events:?}")
            };
            assert!((f64::from(found) - hz).abs() <= 12.5, "{hz} Hz found at {found}");
        }
        // A sweep is no beep; nor is a tone too short, or too low.
        let mut b = BeepDetector::new();
        let sweep: Vec<_> = (0..30).flat_map(|i| tone(500.0 + 60.0 * f64::from(i), 2000.0, 1, 0)).collect();
        let short = tone(1000.0, 2000.0, 6, 0);
        let low = tone(300.0, 2000.0, 20, 0);
        for (i, f) in sweep.iter().chain(&short).chain(&[[0; FRAME_SAMPLES]; 3]).chain(&low).enumerate() {
            assert_eq!(b.handle(20 * (i as u64 + 1), f), None);
        }
    }
}
