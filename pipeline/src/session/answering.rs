//! Answering-machine detection in a call we placed
//! ([`crate::dsp::amd`]): the agent holds its greeting while the detector
//! listens to whoever answered. A person (or no verdict) gets the
//! greeting; a machine gets hung up on, or a message left after its beep
//! (spoken by the agent's voice, or a recording), then the call ends.
//!
//! What the far end said meanwhile goes in the transcript (turn 0), and
//! the verdict with its evidence in the call log and to the transport.

use std::sync::Arc;

use super::{CallEventKind, Driver, EndReason, SessionEvent, Speaker, TranscriptLine};
use crate::dsp::Frame;
use crate::dsp::amd::{AmdConfig, AmdEvent, AmdResult, Detection, Detector};

/// Detect who answers, and what to do about a machine.
#[derive(Debug, Clone)]
pub struct AnsweringMachine {
    pub detector: AmdConfig,
    pub on_machine: OnMachine,
}

/// What the agent does when a machine answers.
#[derive(Debug, Clone)]
pub enum OnMachine {
    /// Hang up at once (a campaign may call again later).
    HangUp,
    /// Wait for the beep (or the end of the greeting), leave this message,
    /// then hang up.
    LeaveMessage(Voicemail),
}

/// A message for answering machines.
#[derive(Clone)]
pub struct Voicemail {
    /// What it says: spoken by the agent's voice, or (with a recording)
    /// what the transcript writes for it.
    pub text: String,
    /// 16 kHz mono audio played instead of the voice.
    pub recording: Option<Arc<[i16]>>,
}

impl std::fmt::Debug for Voicemail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voicemail")
            .field("text", &self.text)
            .field("recording_ms", &self.recording.as_ref().map(|r| r.len() / 16))
            .finish()
    }
}

/// A detection under way.
pub(super) struct Answering {
    detector: Detector,
    on_machine: OnMachine,
}

impl Answering {
    pub(super) fn new(config: &AnsweringMachine) -> Self {
        Self { detector: Detector::new(config.detector), on_machine: config.on_machine.clone() }
    }
}

impl Driver {
    /// The far end's frame (as the VAD heard it), while detecting.
    pub(super) fn answering_frame(&mut self, frame: &Frame, speech: f32) {
        let media_ms = self.media_ms;
        if let Some(event) =
            self.answering.as_mut().and_then(|a| a.detector.handle_frame(media_ms, frame, speech))
        {
            self.answering_event(event);
        }
    }

    /// Recognised words, while detecting or from a machine: they are
    /// evidence, and the transcript's (no turn is taken).
    pub(super) fn answering_words(&mut self, text: &str, is_final: bool) {
        if is_final && !text.trim().is_empty() {
            let at_ms = self.ms_since_start(self.caller_stopped.unwrap_or(self.now));
            self.transcript.push(TranscriptLine {
                turn: 0,
                speaker: Speaker::Caller,
                text: text.trim().to_owned(),
                at_ms,
                interrupted: false,
            });
        }
        let media_ms = self.media_ms;
        if let Some(event) =
            self.answering.as_mut().and_then(|a| a.detector.handle_words(media_ms, text, is_final))
        {
            self.answering_event(event);
        }
    }

    fn answering_event(&mut self, event: AmdEvent) {
        match event {
            AmdEvent::Decided(detection) => self.decided(detection),
            AmdEvent::LeaveMessage { cue, .. } => {
                let Some(Answering { on_machine: OnMachine::LeaveMessage(message), .. }) =
                    self.answering.take()
                else {
                    return;
                };
                tracing::info!(?cue, "leaving the message");
                self.log(CallEventKind::MessageLeft { cue });
                self.voicemail = message.recording.clone();
                self.turns.leave_message(self.now, message.text);
            }
        }
    }

    fn decided(&mut self, detection: Detection) {
        tracing::info!(
            amd = detection.result.as_str(),
            reason = ?detection.reason,
            decided_ms = detection.decided_ms,
            "answering-machine detection"
        );
        let result = detection.result;
        self.log(CallEventKind::AnsweringMachine(detection.clone()));
        self.events.push_back(SessionEvent::AnsweringMachine(detection));
        match result {
            // Greet whoever it is.
            AmdResult::Human | AmdResult::Unknown => {
                self.answering = None;
                self.turns.handle_start(self.now);
            }
            AmdResult::Machine => {
                self.machine = true;
                if matches!(self.answering, Some(Answering { on_machine: OnMachine::HangUp, .. })) {
                    self.answering = None;
                    self.end = Some(EndReason::AnsweringMachine);
                }
                // Otherwise the detector listens on for the beep.
            }
        }
    }
}
